"""Choosing a configuration (features × experiment) without looking at the test split: the code behind
`mser select`.

Every candidate is cross-validated inside the training dialogues, one fold per recording session
(``cv='train-sessions'``: the held-out session's dialogues are scored by a model that never trained on them, whose
epochs were selected on validation dialogues from the other sessions). The candidate with the best pooled
cross-validated score (mean over seeds) is selected. Only then is every candidate trained under the plain protocol
and scored once on the test split, so the table can show what the choice was worth; the test scores never take part
in it. On IEMOCAP that is 4 folds (Sessions 1-4) over 5810 utterances, against 647 utterances in the 12 validation
dialogues: the noise that made a validation split pick the configuration that was worse on test.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from data_utils.dataset import load_dataset
from data_utils.identity import SYNTHETIC_WARNING
from data_utils.labels import DEFAULT_SCHEME

from ..metrics import METRIC_LABELS, METRICS, seed_std

SELECTION_CV = "train-sessions"


@dataclass(frozen=True)
class Candidate:
    data: str  # a corpus pickle (or a synthetic preset)
    experiment: str  # a registered experiment name
    overrides: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{Path(self.data).stem} × {self.experiment}" + (f" [{', '.join(self.overrides)}]"
                                                                if self.overrides else "")

    def folder(self) -> str:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(self.data).stem)
        return stem


def candidates(data: Sequence[str], experiments: Sequence[str], overrides: Sequence[str] = ()) -> list[Candidate]:
    """Every (data, experiment) pair, with the same overrides."""
    return [Candidate(str(d), e, tuple(overrides)) for d in data for e in experiments]


def select(cands: Iterable[Candidate], *, out: str | Path, seeds: Sequence[int] = range(5), metric: str = "macro_f1",
           scheme: str = DEFAULT_SCHEME, epochs: int | None = None, test: bool = True, workers: int = 1,
           verbose: int = 1) -> pd.DataFrame:
    """Cross-validate every candidate inside the training dialogues, select the best by ``metric``, then (with
    ``test``) score every candidate once on the test split. Run directories go under ``out`` (resumable, like
    every run). Returns one row per candidate: CV mean ± std over seeds, the validation score its test runs
    selected epochs on, test mean ± std and the seed ensemble, and ``selected``."""
    from .runner import run_many

    cands = list(cands)
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    if not cands:
        raise ValueError("no candidates to select from")
    out = Path(out)
    rows = []
    for data in dict.fromkeys(c.data for c in cands):
        group = [c for c in cands if c.data == data]
        names = [c.experiment for c in group]
        overrides = group[0].overrides
        kwargs = dict(seeds=seeds, epochs=epochs, scheme=scheme, workers=workers, verbose=verbose,
                      overrides=list(overrides) or None, progress=False)
        ds = load_dataset(data, scheme=scheme)  # read and validated once, for both passes
        cv = run_many(names, ds, out_root=out / group[0].folder() / "cv", cv=SELECTION_CV, **kwargs)
        tested = run_many(names, ds, out_root=out / group[0].folder() / "test", **kwargs) if test else {}
        for c, (name, run) in zip(group, cv.items()):
            row = {"candidate": c.label, "data": c.data, "experiment": name,
                   f"cv_{metric}": run.mean(metric), f"cv_{metric}_std": _std(run, metric)}
            if test:
                t = tested[name]
                valid = t.validation()[metric]
                row.update({f"valid_{metric}": float(np.mean(valid)), f"test_{metric}": t.mean(metric),
                            f"test_{metric}_std": _std(t, metric), f"ensemble_{metric}": t.ensemble()[metric],
                            "test_accuracy": t.mean("accuracy"), "seeds": len(t.seeds)})
            rows.append(row)
            if verbose:
                print(f"selection: {c.label}: CV {metric} {row[f'cv_{metric}']:.4f}"
                      + (f", test {row[f'test_{metric}']:.4f}" if test else ""), file=sys.stderr, flush=True)
        synthetic = next(iter(cv.values())).data["synthetic"]
        for row in rows[-len(group):]:
            row["synthetic"] = synthetic
    table = pd.DataFrame(rows)
    table["selected"] = table[f"cv_{metric}"] == table[f"cv_{metric}"].max()
    return table


def _std(run, metric: str) -> float:
    return seed_std([s.metrics[metric] for s in run.seeds])


def to_markdown(table: pd.DataFrame, metric: str = "macro_f1") -> str:
    """The selection table: the selected row in bold, the criterion first, test last; headed by a warning when any
    candidate's data is synthetic."""
    label = METRIC_LABELS[metric]
    header = ["Candidate (features × model)", f"CV {label} (train sessions)"]
    has_test = f"test_{metric}" in table
    if has_test:
        header += [f"Valid {label}", f"Test {label}", "Ensemble", "Test accuracy"]
    lines = [f"> **{SYNTHETIC_WARNING}.**", ""] if table.get("synthetic", pd.Series([False])).any() else []
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in table.iterrows():
        cells = [r["candidate"] + (" (selected)" if r["selected"] else ""),
                 f"{r[f'cv_{metric}']:.4f} ± {r[f'cv_{metric}_std']:.4f}"]
        if has_test:
            cells += [f"{r[f'valid_{metric}']:.4f}", f"{r[f'test_{metric}']:.4f} ± {r[f'test_{metric}_std']:.4f}",
                      f"{r[f'ensemble_{metric}']:.4f}", f"{r['test_accuracy']:.4f}"]
        if r["selected"]:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
