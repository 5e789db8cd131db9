"""Tables of runs, in memory (what the runner returns) or on disk (what `mser run` wrote): one code path for both
(:func:`model_utils.results.as_run`). Every table is headed by the data its rows came from. No deep-learning backend
is imported here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .. import metrics
from ..metrics import METRIC_LABELS, METRICS
from ..results import RunResult, as_runs
from .compare import compare_runs
from .text import DIFFERS_MARK, data_label, describe_data, escape_markdown, evaluation_label, \
    modality_label

MODALITY_ORDER = ("text", "audio", "visual", "all")
RUNS_TABLE_COLUMNS = ["experiment", "group", "family", "architecture", "modality", "data", "evaluation", "metric",
                      "seeds",
                      *(c for m in METRICS for c in (m, f"{m}_std")), *(f"ens_{m}" for m in METRICS),
                      "train_seconds", "differs"]


def runs_table(results) -> pd.DataFrame:
    """One row per run (RunResults, or directories written by `mser run`): mean and std over seeds of every metric,
    the seed ensemble's metrics (``ens_<metric>``; NaN for runs without stored posteriors), training seconds, the
    data, what was scored, and ``differs`` — what the run's configuration changed from the experiment's defaults
    (overrides, a lower epoch cap), empty when nothing."""
    rows = []
    for r in as_runs(results):
        summary = r.summary()
        exp = r.experiment
        row = {"experiment": exp.name, "group": exp.group, "family": exp.family, "architecture": exp.arch,
               "modality": modality_label(exp.modalities), "data": data_label(r.data),
               "evaluation": evaluation_label(r), "metric": r.metric, "seeds": len(r.seeds)}
        for m in METRICS:
            row[m] = summary["metrics"][m]["mean"]
            row[f"{m}_std"] = summary["metrics"][m]["std"]
        ensemble = summary["ensemble"] or {}
        for m in METRICS:
            row[f"ens_{m}"] = ensemble.get(m, np.nan)
        row["train_seconds"] = summary["train_seconds"]["mean"]
        row["differs"] = ", ".join(_differs(r))
        rows.append(row)
    return pd.DataFrame(rows, columns=RUNS_TABLE_COLUMNS)


def _differs(run: RunResult) -> list[str]:
    keys = run.config.get("differs_from_defaults", [])
    config = run.config.get("train_config", {})
    shown = []
    for k in keys:
        if k == "epochs":
            shown.append(f"epochs cap {config.get('epochs', '?')}")
        else:
            shown.append(f"{k}={run.experiment.overrides.get(k)}")
    return shown


def to_markdown(table: pd.DataFrame, *, title: str | None = None) -> str:
    """A markdown table with `mean ± std` cells and the seed ensemble's macro-F1, headed by the data every row came
    from. A row whose configuration differs from its experiment's defaults is marked † and explained below."""
    lines = []
    if title:
        lines += [f"### {escape_markdown(title)}", ""]
    for data in table["data"].unique():
        scored = ", ".join(sorted(table.loc[table["data"] == data, "evaluation"].unique())) \
            if "evaluation" in table else "test split"
        lines.append(f"Data: **{escape_markdown(data)}**. Metrics over real utterances ({escape_markdown(scored)}), "
                     "mean ± std over seeds; 'Ensemble' averages the seeds' posteriors.")
    lines.append("")
    header = ["Experiment", "Seeds"] + [METRIC_LABELS[m] for m in METRICS] + ["Ensemble macro-F1", "Train s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    multi_data = table["data"].nunique() > 1
    multi_evaluation = "evaluation" in table and table["evaluation"].nunique() > 1
    notes = []
    for _, r in table.iterrows():
        tags = ([r["data"]] if multi_data else []) + ([r["evaluation"]] if multi_evaluation else [])
        name = f"{r['experiment']} ({'; '.join(tags)})" if tags else r["experiment"]
        name = escape_markdown(name)
        if r.get("differs"):
            name += f" {DIFFERS_MARK}"
            notes.append(f"{DIFFERS_MARK} {escape_markdown(r['experiment'])}: {escape_markdown(r['differs'])} (not "
                         "the experiment's defaults)")
        ensemble = r.get("ens_macro_f1", np.nan)
        cells = [name, str(r["seeds"])] + [f"{r[m]:.4f} ± {r[f'{m}_std']:.4f}" for m in METRICS] + \
                ["–" if pd.isna(ensemble) else f"{ensemble:.4f}", f"{r['train_seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def summary_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A results table for reading: one row per experiment, `mean ± std` cells and the seed ensemble's macro-F1, as
    :func:`to_markdown` prints; what a run changed from its experiment's defaults, if any run did.

    Columns whose name starts with 'Δ' (see :func:`with_delta`) are kept, signed.
    """
    frame = pd.DataFrame(index=pd.Index(table["experiment"], name="experiment"))
    if "modality" in table:
        frame["modality"] = table["modality"].to_numpy()
    frame["seeds"] = table["seeds"].to_numpy()
    for m in METRICS:
        frame[METRIC_LABELS[m]] = [f"{a:.4f} ± {s:.4f}" for a, s in zip(table[m], table[f"{m}_std"])]
    if "ens_macro_f1" in table:
        frame["ensemble macro-F1"] = ["–" if pd.isna(v) else f"{v:.4f}" for v in table["ens_macro_f1"]]
    if "differs" in table and table["differs"].astype(bool).any():
        frame["not the defaults"] = table["differs"].to_numpy()
    for column in (c for c in table.columns if c.startswith("Δ")):
        frame[column] = [f"{v:+.4f}" for v in table[column]]
    frame["train s"] = [f"{v:.1f}" for v in table["train_seconds"]]
    return frame


def frame_to_markdown(frame: pd.DataFrame, *, title: str, data, precision: int = 4, index: bool = True) -> str:
    """Any DataFrame as a markdown table headed, like :func:`to_markdown`'s, by its title and its data."""
    frame = frame.reset_index() if index else frame
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "–" if np.isnan(v) else f"{v:.{precision}f}"
        return escape_markdown(v)
    lines = [f"### {escape_markdown(title)}", "", f"Data: **{escape_markdown(describe_data(data))}**.", "",
             "| " + " | ".join(map(escape_markdown, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def arch_modality_grid(table: pd.DataFrame, metric: str = "macro_f1", *, std: bool = False) -> pd.DataFrame:
    """Architecture × modality pivot of a :func:`runs_table` (mean of ``metric``, or its std over seeds).

    Rows keep the table's order; columns are text, audio, visual, all (then any other combination). A cell
    without a run is NaN.
    """
    dupes = table[table.duplicated(["architecture", "modality"], keep=False)]
    if len(dupes):
        raise ValueError(f"several runs share an architecture × modality cell: {list(dupes['experiment'])}")
    grid = table.pivot(index="architecture", columns="modality", values=f"{metric}_std" if std else metric)
    columns = [c for c in MODALITY_ORDER if c in grid.columns] + [c for c in grid.columns if c not in MODALITY_ORDER]
    return grid.loc[list(dict.fromkeys(table["architecture"])), columns].rename_axis(columns=None)


def per_class_report(result) -> pd.DataFrame:
    """Precision, recall and F1 of every class, mean and std over seeds, with the class's test support."""
    rows = {}
    for c in result.class_names:
        per_seed = [s.metrics["per_class"][c] for s in result.seeds]
        row = {}
        for k in ("precision", "recall", "f1"):
            values = np.array([p[k] for p in per_seed])
            row[k] = values.mean()
            row[f"{k}_std"] = metrics.seed_std(values)
        row["support"] = per_seed[0]["support"]
        rows[c] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def per_class_f1(results) -> pd.DataFrame:
    """Experiment × class table of F1 (mean over seeds)."""
    return pd.DataFrame({r.experiment.name: per_class_report(r)["f1"] for r in as_runs(results)}).T \
        .rename_axis("experiment")


def best_by(results, key: str = "family", metric: str = "macro_f1") -> dict:
    """The run with the best mean ``metric`` for every value of an Experiment attribute (e.g. family)."""
    best: dict = {}
    for r in as_runs(results):
        k = getattr(r.experiment, key)
        if k not in best or r.mean(metric) > best[k].mean(metric):
            best[k] = r
    return best


def with_delta(table: pd.DataFrame, reference: str, metric: str = "macro_f1") -> pd.DataFrame:
    """``table`` plus a column 'Δ <metric> vs <reference>': each row's mean minus the reference row's."""
    ref = table.loc[table["experiment"] == reference, metric]
    if ref.empty:
        raise ValueError(f"reference {reference!r} is not in the table ({list(table['experiment'])})")
    return table.assign(**{f"Δ {METRIC_LABELS[metric]} vs {reference}": table[metric] - ref.iloc[0]})


def fusion_gains(table: pd.DataFrame, metric: str = "macro_f1", *, results=None, n_boot: int = 2000,
                 seed: int = 0) -> pd.DataFrame:
    """Every fused run of a :func:`runs_table` against the best unimodal run of its family: the gain, the larger of
    the two runs' std over seeds (a gain smaller than that is not evidence, flaw B8), and whether the fused run beats
    every unimodal run of its family. Families with no unimodal run are left out.

    Given ``results`` (the RunResults by name), each gain also gets the paired bootstrap over test dialogues of
    :func:`compare_runs`: ``p_value`` and ``significant`` (at 0.05).
    """
    rows = {}
    for family, runs in table.groupby("family", sort=False):
        fused = runs["modality"].str.contains(r"\+|^all$")
        if fused.all() or not fused.any():
            continue
        uni = runs[~fused].loc[runs[~fused][metric].idxmax()]
        for _, fus in runs[fused].iterrows():
            row = {"family": family, "fused": fus[metric], "best_unimodal": uni["experiment"],
                   "unimodal": uni[metric], "gain": fus[metric] - uni[metric],
                   "larger_std": max(uni[f"{metric}_std"], fus[f"{metric}_std"]),
                   "beats_every_unimodal": bool(fus[metric] > uni[metric])}
            if results is not None:
                test = compare_runs(results[uni["experiment"]], results[fus["experiment"]], metric=metric,
                                    n_boot=n_boot, seed=seed)
                row.update(p_value=test["p_value"], significant=test["significant"])
            rows[fus["experiment"]] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("fused_run")


def ablation_table(ablations, reference=None, metric: str = "macro_f1") -> pd.DataFrame:
    """:func:`runs_table` of ablation runs, headed by the ``reference`` run (the full model) if given, with
    each row's difference from it (:func:`with_delta`)."""
    runs = ([reference] if reference is not None else []) + as_runs(ablations)
    table = runs_table(runs)
    return with_delta(table, reference.experiment.name, metric) if reference is not None else table

