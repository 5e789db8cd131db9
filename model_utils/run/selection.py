"""Choosing a configuration (features × experiment × training settings) without looking at the test split: the code
behind `mser select`.

Every candidate is cross-validated inside the training dialogues, one fold per recording session
(``cv='train-sessions'``: the held-out session's dialogues are scored by a model that never trained on them, whose
epochs were selected on validation dialogues from the other sessions). The candidate with the best pooled
cross-validated score (mean over seeds) is selected. Only then is every candidate trained under the plain protocol
and scored once on the test split, so the table can show what the choice was worth; the test scores never take part
in it. On IEMOCAP that is 4 folds (Sessions 1-4) over 5810 utterances, against 647 utterances in the 12 validation
dialogues: the noise that made a validation split pick the configuration that was worse on test.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

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


def candidates(data: Sequence[str], experiments: Sequence[str], overrides: Sequence[str] = (),
               tries: Mapping[str, Sequence[str]] | None = None) -> list[Candidate]:
    """Every (data, experiment) pair with the same ``overrides``, once for each combination of the alternatives in
    ``tries`` (``{"train.class_weight": ["balanced", "none"]}``: each candidate twice, once with each value)."""
    tries = dict(tries or {})
    variants = [tuple(f"{k}={v}" for k, v in zip(tries, values)) for values in itertools.product(*tries.values())]
    return [Candidate(str(d), e, (*overrides, *variant)) for d in data for variant in variants for e in experiments]


def parse_try(text: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2,...`` (what ``mser select --try`` takes) as ``(KEY, [V1, V2, ...])``: values split at commas outside
    brackets, so ``kernel_sizes=(8,3),(12,8,4)`` gives two; ``ValueError`` for fewer than two or a repeated one."""
    key, sep, values = text.partition("=")
    parts, depth, current = [], 0, ""
    for ch in values:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    if not sep or not key.strip() or len(parts) < 2 or not all(parts):
        raise ValueError(f"--try {text!r} is not KEY=VALUE,VALUE[,...] with at least two values (e.g. "
                         "train.class_weight=balanced,none)")
    if len(set(parts)) != len(parts):
        raise ValueError(f"--try {text!r} repeats a value")
    return key.strip(), parts


def select(cands: Iterable[Candidate], *, out: str | Path, seeds: Sequence[int] = range(5), metric: str = "macro_f1",
           scheme: str = DEFAULT_SCHEME, epochs: int | None = None, test: bool = True, workers: int = 1,
           verbose: int = 1) -> pd.DataFrame:
    """Cross-validate every candidate inside the training dialogues, select the best by ``metric`` (which the runs
    are judged and trained by: epochs selected on it, ``'auto'`` loss weighting for it), then (with ``test``) score
    every candidate once on the test split. Run directories go under ``out`` (resumable, like
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
    datasets: dict[str, object] = {}
    for data, overrides in dict.fromkeys((c.data, c.overrides) for c in cands):
        group = [c for c in cands if (c.data, c.overrides) == (data, overrides)]
        names = [c.experiment for c in group]
        kwargs = dict(seeds=seeds, epochs=epochs, scheme=scheme, workers=workers, verbose=verbose,
                      overrides=list(overrides) or None, progress=False, metric=metric)
        if data not in datasets:  # read and validated once, for every pass over it
            datasets[data] = load_dataset(data, scheme=scheme)
        ds = datasets[data]
        cv = run_many(names, ds, out_root=out / group[0].folder() / "cv", cv=SELECTION_CV, **kwargs)
        tested = run_many(names, ds, out_root=out / group[0].folder() / "test", **kwargs) if test else {}
        for c, (name, run) in zip(group, cv.items()):
            row = {"candidate": c.label, "data": c.data, "experiment": name, "overrides": ", ".join(c.overrides),
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
