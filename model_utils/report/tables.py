"""Tables and comparisons of runs, in memory (what the runner returns) or on disk (what `mser run` wrote): one code
path for both (:func:`model_utils.results.as_run`). No deep-learning backend is imported here.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from data_utils.identity import SYNTHETIC_NAME, SYNTHETIC_WARNING, describe_source

from .metrics import METRICS, paired_bootstrap
from .results import RunResult, as_run

METRIC_LABELS = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "weighted_f1": "Weighted-F1", "uar": "UAR"}
DIFFERS_MARK = "†"


def data_label(dataset: dict) -> str:
    """How a table names its data (``dataset``: a run's ``data`` record): synthetic data is always called out, and
    "IEMOCAP (Poria et al.)" only for that file itself (:func:`data_utils.identity.describe_source`)."""
    return f"{data_name(dataset)}, {dataset.get('label_scheme', '?')}"


def data_name(dataset: dict) -> str:
    """The name of a run's data, without its label scheme (see :func:`data_label`)."""
    if dataset.get("synthetic"):
        return SYNTHETIC_NAME
    return dataset.get("name") or dataset.get("path", "?")  # runs recorded before names existed: the path


def settings_note(run: RunResult) -> str:
    """What a run's settings change from the experiment's own, for figure titles: '' or e.g. 'epochs capped at 6'."""
    if "epochs" in run.config.get("differs_from_defaults", []):
        return f"epochs capped at {run.config.get('train_config', {}).get('epochs', '?')}"
    return ""


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")  # '<', '>' and '&' become HTML entities first


def escape_markdown(text) -> str:
    """``text`` (a path, a label, an experiment name: anything that came from data) safe to put in markdown that a
    notebook or nbconvert renders as HTML: HTML special characters become entities and markdown's punctuation is
    backslash-escaped, so it shows as written and never becomes a tag, a link or a code span."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(" ".join(str(text).split()), quote=False))


def _runs(results) -> list[RunResult]:
    """RunResults from a mapping (name -> RunResult, as run_many returns) or an iterable of RunResults or run
    directories."""
    values = results.values() if isinstance(results, Mapping) else results
    return [as_run(r) for r in values]


def modality_label(modalities) -> str:
    """'all' for text+audio+visual in any order, else the modalities joined with '+'."""
    return "all" if set(modalities) == {"text", "audio", "visual"} else "+".join(modalities)


def evaluation_label(run: RunResult) -> str:
    kind = run.config.get("evaluation", {}).get("kind", "test-split")
    return "test split" if kind == "test-split" else kind


def runs_table(results) -> pd.DataFrame:
    """One row per run (RunResults, or directories written by `mser run`): mean and std over seeds of every metric,
    the seed ensemble's metrics (``ens_<metric>``; NaN for runs without stored posteriors), training seconds, the
    data, what was scored, and ``differs`` — what the run's configuration changed from the experiment's defaults
    (overrides, a lower epoch cap), empty when nothing."""
    rows = []
    for r in _runs(results):
        summary = r.summary()
        exp = r.experiment
        row = {"experiment": exp.name, "group": exp.group, "family": exp.family, "architecture": exp.arch,
               "modality": modality_label(exp.modalities), "data": data_label(r.data),
               "evaluation": evaluation_label(r), "seeds": len(r.seeds)}
        for m in METRICS:
            row[m] = summary["metrics"][m]["mean"]
            row[f"{m}_std"] = summary["metrics"][m]["std"]
        ensemble = summary["ensemble"] or {}
        for m in METRICS:
            row[f"ens_{m}"] = ensemble.get(m, np.nan)
        row["train_seconds"] = summary["train_seconds"]["mean"]
        row["differs"] = ", ".join(_differs(r))
        rows.append(row)
    return pd.DataFrame(rows)


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


def compare_runs(a: RunResult | str | Path, b: RunResult | str | Path, *, metric: str = "macro_f1",
                 n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap over the scored dialogues: is run B's ``metric`` different from run A's? Runs are
    RunResults or run directories; both must have scored the same dialogues, labels and mask (a test split, or
    every utterance of a cross-validation). Each run's statistic is its metric averaged over its seeds."""
    a, b = as_run(a), as_run(b)
    if not a.same_scored_set(b):
        raise ValueError(f"{a.experiment.name} ({evaluation_label(a)}) and {b.experiment.name} "
                         f"({evaluation_label(b)}) were not scored on the same test set (dialogues, labels and mask "
                         "must match); a paired comparison needs the same data, label scheme and evaluation")
    result = paired_bootstrap(a.labels, [s.predictions for s in a.seeds], [s.predictions for s in b.seeds],
                              a.mask, metric=metric, n_boot=n_boot, seed=seed,
                              num_classes=len(a.class_names))  # all C classes, as every reported metric
    return {"a": a.experiment.name, "b": b.experiment.name, "data": data_label(a.data),
            "evaluation": evaluation_label(a), **result}


FEW_DIALOGUES = 10  # a bootstrap over fewer dialogues than this says little: the comparison warns


def describe_comparison(c: dict) -> str:
    """A :func:`compare_runs` result in one sentence, with the number of dialogues it resampled (and a warning when
    they are fewer than :data:`FEW_DIALOGUES`)."""
    verdict = "significant" if c["significant"] else "not significant"
    lo, hi = c["ci95"]
    n = c["n_dialogues"]
    over = f"the {n} test dialogues" if c.get("evaluation", "test split") == "test split" else \
        f"the {n} dialogues of the cross-validation ({c['evaluation']})"
    few = (f" Warning: only {n} dialogues were resampled (fewer than {FEW_DIALOGUES}); the p-value and interval "
           "are unreliable.") if n < FEW_DIALOGUES else ""
    return (f"{c['b']} − {c['a']} on {c['metric']}: {c['diff']:+.4f} (95% CI {lo:+.4f} … {hi:+.4f}, "
            f"p = {c['p_value']:.4f}, {verdict} at 0.05; paired bootstrap over {over}, "
            f"{c['n_boot']} resamples; data: {c['data']}).{few}")


def find_run(results: Mapping[str, RunResult], name: str) -> RunResult | None:
    """The run called ``name`` in ``results``, or the only one derived from experiment ``name`` by overrides."""
    if name in results:
        return results[name]
    derived = [r for r in results.values() if r.experiment.base == name]
    return derived[0] if len(derived) == 1 else None


# ------------------------------------------------------------------------------------------------ notebooks
# Helpers for the notebooks, which hold RunResults in memory (model_utils.runner); they take run directories too.

MODALITY_ORDER = ("text", "audio", "visual", "all")


class Markdown(str):
    """A string that a notebook renders as markdown (and that prints as itself anywhere else)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def describe_data(data) -> str:
    """:func:`data_label` of an ERCDataset, a RunResult, a summary's ``dataset`` dict, or a label already made."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        return data_label(data)
    if hasattr(data, "scheme"):  # ERCDataset
        return data_label({**describe_source(data.source, synthetic=data.synthetic, dialogues=len(data)),
                           "synthetic": data.synthetic, "label_scheme": data.scheme.name})
    return data_label(data.data)  # RunResult


def run_settings(*, quick: bool = False, epochs: int | None = None, seeds: int | None = None) -> str:
    """A notebook's settings in words, when they are not the full study's ('' when they are): a QUICK smoke run, an
    epoch cap."""
    parts = (["QUICK smoke run (a few experiments, not for citing)"] if quick else []) + \
        ([f"epochs capped at {epochs}"] if epochs else []) + ([f"{seeds} seeds"] if quick and seeds else [])
    return "; ".join(parts)


def data_banner(ds, *, settings: str = "") -> Markdown:
    """A notebook's first output: the data every number below comes from (its name, file, SHA-256 and dialogue
    count), loudly when it is synthetic, and ``settings`` (:func:`run_settings`) when they are not the full study's.
    Every data-derived string is escaped (:func:`escape_markdown`)."""
    labels = ", ".join(map(escape_markdown, ds.class_names))
    facts = (f"label scheme {escape_markdown(ds.scheme.name)} ({labels}); {len(ds.splits['train'])} training "
             f"and {len(ds.splits['test'])} test dialogues, {int(ds.mask.sum())} scored utterances")
    if settings:
        facts += f". Settings: {escape_markdown(settings)}"
    if ds.synthetic:
        return Markdown(f"> **{SYNTHETIC_WARNING}.** Every number, table and figure below comes from the built-in "
                        f"synthetic data ({facts}). Use it to check the pipeline, never to cite.")
    who = describe_source(ds.source, synthetic=False, dialogues=len(ds))
    return Markdown(f"Data: **{escape_markdown(who['name'])}**, the file {escape_markdown(ds.source)} (SHA-256 "
                    f"{who['sha256'][:16]}…, {who['dialogues']} dialogues); {facts}.")


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


def styled(frame: pd.DataFrame, title: str, data, *, precision: int = 4):
    """``frame`` for display in a notebook, captioned with ``title`` and the data it came from; every cell, label
    and the caption HTML-escaped (they hold data-derived strings)."""
    return (frame.style.format(precision=precision, na_rep="–", escape="html")
            .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
            .format_index_names(escape="html", axis=0).format_index_names(escape="html", axis=1)
            .set_caption(html.escape(f"{title} — {describe_data(data)}"))
            .set_table_styles([{"selector": "caption", "props": "font-weight: bold; text-align: left;"}]))


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
            row[f"{k}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
        row["support"] = per_seed[0]["support"]
        rows[c] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("class")


def per_class_f1(results) -> pd.DataFrame:
    """Experiment × class table of F1 (mean over seeds)."""
    return pd.DataFrame({r.experiment.name: per_class_report(r)["f1"] for r in _runs(results)}).T \
        .rename_axis("experiment")


def best_by(results, key: str = "family", metric: str = "macro_f1") -> dict:
    """The run with the best mean ``metric`` for every value of an Experiment attribute (e.g. family)."""
    best: dict = {}
    for r in _runs(results):
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
    runs = ([reference] if reference is not None else []) + _runs(ablations)
    table = runs_table(runs)
    return with_delta(table, reference.experiment.name, metric) if reference is not None else table


def significance_table(results, pairs, *, metric: str = "macro_f1", n_boot: int = 2000,
                       seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """:func:`compare_runs` for every (a, b) pair whose runs are both in ``results`` (a mapping by name; a name
    also finds the one run derived from that experiment by overrides, :func:`find_run`).

    Returns a table (one row per pair: b − a, its 95% interval, p and the verdict) and the comparisons.
    """
    found = [(find_run(results, a), find_run(results, b)) for a, b in pairs]
    comparisons = [compare_runs(a, b, metric=metric, n_boot=n_boot, seed=seed)
                   for a, b in found if a is not None and b is not None]
    rows = [{"comparison": f"{c['b']} − {c['a']}", "metric": c["metric"], "diff": c["diff"],
             "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1], "p_value": c["p_value"],
             "significant": c["significant"], "seeds": "/".join(map(str, c["n_seeds"])),
             "dialogues": c["n_dialogues"]} for c in comparisons]
    columns = ["comparison", "metric", "diff", "ci95_low", "ci95_high", "p_value", "significant", "seeds",
               "dialogues"]
    return pd.DataFrame(rows, columns=columns).set_index("comparison"), comparisons


def select_experiments(candidates, *, quick_subset=None, limit: int | None = None, only=None) -> list[str]:
    """Which experiments a notebook runs: ``candidates`` (names or Experiments, in order), cut to
    ``quick_subset`` if given (QUICK mode; names not among the candidates are ignored) and to the first
    ``limit``, then to ``only``.

    A name in ``only`` that is no experiment at all raises (a typo must not silently run nothing).
    """
    from .experiments import EXPERIMENTS

    names = [c if isinstance(c, str) else c.name for c in candidates]
    if quick_subset is not None:
        names = [n for n in names if n in set(quick_subset)]
    names = names[:limit]
    if only is not None:
        unknown = [n for n in only if n not in EXPERIMENTS]
        if unknown:
            raise KeyError(f"unknown experiment(s) {unknown}; `mser list` shows them all")
        names = [n for n in names if n in set(only)]
    return names


class ReportDir:
    """Where a notebook writes its outputs: ``root/tables/*.md``, ``root/figures/*.png`` and run directories
    ``root/runs/<name>/``. With ``root=None`` (a notebook's ``REPORTS=None``) nothing is written anywhere."""

    def __init__(self, root: str | Path | None):
        self.root = None if root is None else Path(root)

    def _sub(self, name: str) -> Path | None:
        return None if self.root is None else self.root / name

    @property
    def figures(self) -> Path | None:
        return self._sub("figures")

    @property
    def runs(self) -> Path | None:
        return self._sub("runs")

    def table(self, name: str, markdown: str) -> Path | None:
        """Write ``markdown`` to ``tables/<name>.md`` (``mser reproduce`` collects them in name order)."""
        if self.root is None:
            return None
        from data_utils.fileio import write_text

        return write_text(self.root / "tables" / f"{name}.md", markdown, overwrite=True)

    def frame(self, name: str, frame: pd.DataFrame, *, title: str, data, index: bool = True):
        """Write ``frame`` as ``tables/<name>.md`` (:func:`frame_to_markdown`) and return it :func:`styled` for
        display, under the same title."""
        self.table(name, frame_to_markdown(frame, title=title, data=data, index=index))
        return styled(frame, title, data)
