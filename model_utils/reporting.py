"""Tables and comparisons from run directories (what `mser run` wrote). No TensorFlow is imported here."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from .metrics import METRICS, paired_bootstrap

METRIC_LABELS = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "weighted_f1": "Weighted-F1", "uar": "UAR"}


def read_summary(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no summary.json; is {run_dir} a directory written by `mser run`?")
    return json.loads(path.read_text())


def data_label(dataset: dict) -> str:
    """How a table names its data: synthetic data is always called out."""
    scheme = dataset.get("label_scheme", "?")
    if dataset.get("synthetic"):
        return f"SYNTHETIC data (not IEMOCAP), {scheme}"
    return f"{dataset.get('path', '?')}, {scheme}"


def results_table(summaries: Iterable[dict]) -> pd.DataFrame:
    """One row per run: mean ± std of every metric over seeds, plus the data it came from."""
    rows = []
    for s in summaries:
        row = {"experiment": s["experiment"], "data": data_label(s["dataset"]), "seeds": len(s["seeds"])}
        for m in METRICS:
            row[m] = s["metrics"][m]["mean"]
            row[f"{m}_std"] = s["metrics"][m]["std"]
        row["train_seconds"] = s["train_seconds"]["mean"]
        rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(table: pd.DataFrame, *, title: str | None = None) -> str:
    """A markdown table with `mean ± std` cells, headed by the data every row came from."""
    lines = []
    if title:
        lines += [f"### {title}", ""]
    for data in table["data"].unique():
        lines.append(f"Data: **{data}**. Test metrics over real utterances, mean ± std over seeds.")
    lines.append("")
    header = ["Experiment", "Seeds"] + [METRIC_LABELS[m] for m in METRICS] + ["Train s"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    multi_data = table["data"].nunique() > 1
    for _, r in table.iterrows():
        name = f"{r['experiment']} ({r['data']})" if multi_data else r["experiment"]
        cells = [name, str(r["seeds"])] + [f"{r[m]:.4f} ± {r[f'{m}_std']:.4f}" for m in METRICS] + \
                [f"{r['train_seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _load_predictions(run_dir: Path) -> tuple[list[int], dict]:
    summary = read_summary(run_dir)
    preds = {}
    for seed in summary["seeds"]:
        path = run_dir / f"seed_{seed}" / "predictions.npz"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; rerun `mser run` for {summary['experiment']}")
        with np.load(path, allow_pickle=False) as f:
            preds[seed] = {k: f[k] for k in f.files}
    return summary, preds


def compare_runs(dir_a: str | Path, dir_b: str | Path, *, metric: str = "macro_f1", n_boot: int = 2000,
                 seed: int = 0) -> dict:
    """Paired bootstrap over test dialogues: is run B's ``metric`` different from run A's?"""
    (sa, pa), (sb, pb) = _load_predictions(Path(dir_a)), _load_predictions(Path(dir_b))
    first_a, first_b = next(iter(pa.values())), next(iter(pb.values()))
    same = (np.array_equal(first_a["dialogue_ids"], first_b["dialogue_ids"])
            and np.array_equal(first_a["y_true"], first_b["y_true"])
            and np.array_equal(first_a["mask"], first_b["mask"]))
    if not same:
        raise ValueError(f"{dir_a} and {dir_b} were not scored on the same test set (dialogues, labels and mask "
                         "must match); a paired comparison needs the same data and label scheme")
    y, mask = first_a["y_true"], first_a["mask"]
    groups = np.broadcast_to(np.arange(y.shape[0])[:, None], y.shape)
    result = paired_bootstrap(y, [p["y_pred"] for p in pa.values()], [p["y_pred"] for p in pb.values()], mask,
                              groups, metric=metric, n_boot=n_boot, seed=seed,
                              num_classes=len(sa["class_names"]))  # all C classes, as every reported metric
    return {"a": sa["experiment"], "b": sb["experiment"], "data": data_label(sa["dataset"]), **result}


def describe_comparison(c: dict) -> str:
    verdict = "significant" if c["significant"] else "not significant"
    lo, hi = c["ci95"]
    return (f"{c['b']} − {c['a']} on {c['metric']}: {c['diff']:+.4f} (95% CI {lo:+.4f} … {hi:+.4f}, "
            f"p = {c['p_value']:.4f}, {verdict} at 0.05; paired bootstrap over test dialogues, "
            f"{c['n_boot']} resamples; data: {c['data']})")


def summaries(run_dirs: Sequence[str | Path]) -> list[dict]:
    return [read_summary(d) for d in run_dirs]


# ------------------------------------------------------------------------------------------------ notebooks
# Helpers for the notebooks, which hold RunResults in memory (model_utils.runner) rather than run directories.

SYNTHETIC_WARNING = "SYNTHETIC data — not IEMOCAP results"
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
        return data_label({"path": data.source, "synthetic": data.synthetic, "label_scheme": data.scheme.name})
    return data_label(data.data)  # RunResult


def data_banner(ds) -> Markdown:
    """A notebook's first output: the data every number below comes from, loudly when it is synthetic."""
    facts = (f"label scheme `{ds.scheme.name}` ({', '.join(ds.class_names)}); {len(ds.splits['train'])} training "
             f"and {len(ds.splits['test'])} test dialogues, {int(ds.mask.sum())} scored utterances")
    if ds.synthetic:
        return Markdown(f"> **{SYNTHETIC_WARNING}.** Every number, table and figure below comes from the built-in "
                        f"synthetic data ({facts}). Use it to check the pipeline, never to cite.")
    return Markdown(f"Data: `{ds.source}` (Poria et al.'s IEMOCAP features); {facts}.")


def _runs(results) -> list:
    """RunResults from a mapping (name -> RunResult, as run_many returns) or an iterable."""
    return list(results.values()) if isinstance(results, dict) else list(results)


def modality_label(modalities) -> str:
    """'all' for text+audio+visual in any order, else the modalities joined with '+'."""
    return "all" if set(modalities) == {"text", "audio", "visual"} else "+".join(modalities)


def runs_table(results) -> pd.DataFrame:
    """:func:`results_table` of in-memory RunResults, with group, family, architecture and modality columns."""
    runs = _runs(results)
    table = results_table(r.summary() for r in runs)
    for i, (column, values) in enumerate((
            ("group", [r.experiment.group for r in runs]), ("family", [r.experiment.family for r in runs]),
            ("architecture", [r.experiment.arch for r in runs]),
            ("modality", [modality_label(r.experiment.modalities) for r in runs]))):
        table.insert(1 + i, column, values)
    return table


def summary_frame(table: pd.DataFrame) -> pd.DataFrame:
    """A results table for reading: one row per experiment, `mean ± std` cells, as :func:`to_markdown` prints.

    Columns whose name starts with 'Δ' (see :func:`with_delta`) are kept, signed.
    """
    frame = pd.DataFrame(index=pd.Index(table["experiment"], name="experiment"))
    if "modality" in table:
        frame["modality"] = table["modality"].to_numpy()
    frame["seeds"] = table["seeds"].to_numpy()
    for m in METRICS:
        frame[METRIC_LABELS[m]] = [f"{a:.4f} ± {s:.4f}" for a, s in zip(table[m], table[f"{m}_std"])]
    for column in (c for c in table.columns if c.startswith("Δ")):
        frame[column] = [f"{v:+.4f}" for v in table[column]]
    frame["train s"] = [f"{v:.1f}" for v in table["train_seconds"]]
    return frame


def styled(frame: pd.DataFrame, title: str, data, *, precision: int = 4):
    """``frame`` for display in a notebook, captioned with ``title`` and the data it came from."""
    return (frame.style.format(precision=precision, na_rep="–")
            .set_caption(f"{title} — {describe_data(data)}")
            .set_table_styles([{"selector": "caption", "props": "font-weight: bold; text-align: left;"}]))


def frame_to_markdown(frame: pd.DataFrame, *, title: str, data, precision: int = 4, index: bool = True) -> str:
    """Any DataFrame as a markdown table headed, like :func:`to_markdown`'s, by its title and its data."""
    frame = frame.reset_index() if index else frame
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "–" if np.isnan(v) else f"{v:.{precision}f}"
        return str(v)
    lines = [f"### {title}", "", f"Data: **{describe_data(data)}**.", "",
             "| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * frame.shape[1]]
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
    the two runs' std over seeds (a gain smaller than that is not evidence, §5 B8), and whether the fused run beats
    every unimodal run of its family. Families with no unimodal run are left out.

    Given ``results`` (the RunResults by name), each gain also gets the paired bootstrap over test dialogues of
    :func:`compare_results`: ``p_value`` and ``significant`` (at 0.05).
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
                test = compare_results(results[uni["experiment"]], results[fus["experiment"]], metric=metric,
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


def compare_results(a, b, *, metric: str = "macro_f1", n_boot: int = 2000, seed: int = 0) -> dict:
    """:func:`compare_runs` for two in-memory RunResults: the same paired bootstrap over test dialogues."""
    ta, tb = a.test, b.test
    if not (ta.dialogue_ids == tb.dialogue_ids and np.array_equal(ta.labels, tb.labels)
            and np.array_equal(ta.mask, tb.mask)):
        raise ValueError(f"{a.experiment.name} and {b.experiment.name} were not scored on the same test set "
                         "(dialogues, labels and mask must match); a paired comparison needs the same data and "
                         "label scheme")
    result = paired_bootstrap(ta.labels, [s.predictions for s in a.seeds], [s.predictions for s in b.seeds],
                              ta.mask, metric=metric, n_boot=n_boot, seed=seed, num_classes=len(a.class_names))
    return {"a": a.experiment.name, "b": b.experiment.name, "data": data_label(a.data), **result}


def significance_table(results, pairs, *, metric: str = "macro_f1", n_boot: int = 2000,
                       seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """:func:`compare_results` for every (a, b) pair whose runs are both in ``results`` (a mapping by name).

    Returns a table (one row per pair: b − a, its 95% interval, p and the verdict) and the comparisons.
    """
    comparisons = [compare_results(results[a], results[b], metric=metric, n_boot=n_boot, seed=seed)
                   for a, b in pairs if a in results and b in results]
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
