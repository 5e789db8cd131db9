"""Figures for the notebooks and reports: confusion matrices, training curves, grids and seed spreads.

Every figure states the data it came from in its title, and can be saved as PNG beside the reports.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
import numpy as np
import pandas as pd
import seaborn as sns

from ..metrics import METRIC_LABELS, seed_std
from ..results import RunResult
from .tables import arch_modality_grid
from .text import data_name, file_stem, settings_note


def data_tag(result: RunResult) -> str:
    """The data a figure of ``result`` comes from (:func:`~.text.data_name`), and its settings when they are not
    the experiment's own (an epoch cap)."""
    note = settings_note(result)
    return data_name(result.data) + (f"; {note}" if note else "")


def save_figure(fig, save_dir: str | Path | None, *name: str) -> Path | None:
    """Save ``fig`` atomically as ``save_dir/<name>.png``, the name made file-safe from its parts
    (:func:`~.text.file_stem`: ``("confusion", "cnn-text[filters=32]")`` -> ``confusion_cnn-text--filters-32.png``);
    nothing when ``save_dir`` is None."""
    if save_dir is None:
        return None
    from data_utils.fileio import atomic_path

    path = Path(save_dir) / f"{file_stem(*name)}.png"
    with atomic_path(path, overwrite=True, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return path


def plot_confusion(result: RunResult, *, save_dir: str | Path | None = None):
    """Counts (summed over seeds) and row-normalised confusion matrices side by side."""
    names = list(result.class_names)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, normalize in zip(axes, (False, True)):
        cm = result.confusion(normalize=normalize)
        sns.heatmap(cm, annot=True, fmt=".2f" if normalize else "d", cmap="Blues", cbar=False, ax=ax,
                    xticklabels=names, yticklabels=names, vmin=0, vmax=1 if normalize else None)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        seeds = f"{len(result.seeds)} seed{'s' if len(result.seeds) != 1 else ''}"
        ax.set_title("row-normalised (recall)" if normalize else f"counts, summed over {seeds}")
    fig.suptitle(f"{result.experiment.name} — {data_tag(result)}, {result.data['label_scheme']}")
    fig.tight_layout()
    save_figure(fig, save_dir, "confusion", result.experiment.name)
    return fig


def plot_history(result: RunResult, *, save_dir: str | Path | None = None):
    """The learning curves of every seed: training loss (solid) and validation loss (dashed) per epoch, and the
    validation macro-F1 that selects the epoch, each seed's best epoch marked (dotted). A cross-validated run
    shows the curves of every fold."""
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    curves = [(f"seed {s.seed}", s.history, s.best_epoch) for s in result.seeds if s.history]
    curves += [(f"seed {s.seed}, {f.session}", f.history, f.best_epoch) for s in result.seeds for f in s.folds]
    for i, (label, history, best) in enumerate(curves):
        colour = f"C{i % 10}"
        epochs = [h["epoch"] for h in history]
        loss_ax.plot(epochs, [h["loss"] for h in history], color=colour, label=label)
        if all("val_loss" in h for h in history):
            loss_ax.plot(epochs, [h["val_loss"] for h in history], color=colour, ls="--")
        f1_ax.plot(epochs, [h["val_macro_f1"] for h in history], color=colour, label=label)
        f1_ax.axvline(best, color=colour, lw=0.6, ls=":")
    for ax in (loss_ax, f1_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set(title="loss (CE over real utterances): training —, validation --", xlabel="epoch", ylabel="loss")
    f1_ax.set(title="validation macro-F1 (dotted: the best epoch)", xlabel="epoch", ylabel="macro-F1")
    if curves:
        f1_ax.legend(fontsize=8)
    fig.suptitle(f"{result.experiment.name} — {data_tag(result)}")
    fig.tight_layout()
    save_figure(fig, save_dir, "history", result.experiment.name)
    return fig


def grid_heatmap(grid: pd.DataFrame, *, title: str, save_dir: str | Path | None = None,
                 name: str = "grid", fmt: str = ".3f", annot: Mapping | None = None, colour_label: str = ""):
    """A heatmap of an architecture × modality grid of mean scores, with a colour bar labelled ``colour_label``."""
    fig, ax = plt.subplots(figsize=(1.6 * grid.shape[1] + 2, 0.6 * grid.shape[0] + 1.8))
    sns.heatmap(grid.astype(float), annot=annot if annot is not None else True, fmt=fmt if annot is None else "",
                cmap="viridis", ax=ax, cbar=True, cbar_kws={"label": colour_label})
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, save_dir, name)
    return fig


def plot_grid(table: pd.DataFrame, metric: str = "macro_f1", *, title: str, save_dir: str | Path | None = None,
              name: str = "grid"):
    """Architecture × modality heatmap of a runs table (:func:`~.tables.runs_table`): mean ± std of ``metric``."""
    mean, std = arch_modality_grid(table, metric), arch_modality_grid(table, metric, std=True)
    annot = mean.map(lambda v: "" if pd.isna(v) else f"{v:.3f}") + std.map(
        lambda v: "" if pd.isna(v) else f"\n± {v:.3f}")
    data = "; ".join(table["data"].unique())
    return grid_heatmap(mean, title=f"{title}: {METRIC_LABELS[metric]}, mean ± std over seeds\n{data}",
                        save_dir=save_dir, name=name, annot=annot.to_numpy(),
                        colour_label=f"mean {METRIC_LABELS[metric]}")


def plot_seeds(results: Mapping[str, RunResult], metric: str = "macro_f1", *, title: str = "",
               save_dir: str | Path | None = None, name: str = "seeds"):
    """Every seed's ``metric`` per experiment (dots) with the mean ± std (bar): how far one run can land."""
    runs = list(results.values())
    longest = max((len(r.experiment.name) for r in runs), default=0)  # rotated labels below the axis need room
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(runs) + 2), 3.8 + 0.05 * longest))
    for i, r in enumerate(runs):
        values = np.array([s.metrics[metric] for s in r.seeds])
        std = seed_std(values)
        ax.errorbar(i, values.mean(), yerr=std, fmt="_", color="black", markersize=18, capsize=4, zorder=1)
        ax.scatter([i] * len(values), values, color="#dd8452", zorder=2, s=22)
    ax.set_xticks(range(len(runs)), [r.experiment.name for r in runs], rotation=45, ha="right")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    tag = data_tag(runs[0]) if runs else ""
    ax.set_title(f"{title} — {tag}" if title else f"per-seed {metric} — {tag}")
    fig.tight_layout()
    save_figure(fig, save_dir, name)
    return fig


def plot_robustness(results, metric: str = "macro_f1", *, title: str = "", save_dir: str | Path | None = None,
                    name: str = "robustness"):
    """Each condition's ``metric`` (mean ± std over seeds) for one or more :func:`model_utils.robustness.robustness`
    results (a dict, or a list of them: one line per model), conditions in the first result's order."""
    results = [results] if isinstance(results, dict) else list(results)
    conditions = [c["condition"] for c in results[0]["conditions"]] if results else []
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(conditions) + 2), 4.0))
    for r in results:
        by = {c["condition"]: c[metric] for c in r["conditions"]}
        x = [i for i, c in enumerate(conditions) if c in by]
        ax.errorbar(x, [by[conditions[i]]["mean"] for i in x], yerr=[by[conditions[i]]["std"] for i in x],
                    marker="o", capsize=3, label=r["experiment"])
    ax.set_xticks(range(len(conditions)), conditions, rotation=45, ha="right")
    ax.set(xlabel="condition at test time", ylabel=f"test {METRIC_LABELS.get(metric, metric)}")
    ax.legend(fontsize=8)
    data = "; ".join(dict.fromkeys(data_name(r["data"]) for r in results))
    caps = sorted({r["epochs_cap"] for r in results if r.get("epochs_cap")})
    data += f"; epochs capped at {', '.join(map(str, caps))}" if caps else ""
    ax.set_title(f"{title or 'missing and noisy modalities'} — {data}")
    fig.tight_layout()
    save_figure(fig, save_dir, name)
    return fig


def plot_attention(results, *, save_dir: str | Path | None = None, name: str = "attention"):
    """Heatmaps of :func:`model_utils.attention.cross_attention` results (a dict, or a list: one row of panels per
    model, one panel per layer): rows the querying text utterances, columns the attended audio or visual ones, each
    labelled by turn and speaker; weights averaged over the heads, padding cut off."""
    results = [results] if isinstance(results, dict) else list(results)
    layer_names = list(dict.fromkeys(n for r in results for n in r["layers"]))
    fig, axes = plt.subplots(len(results), len(layer_names), squeeze=False,
                             figsize=(5.2 * len(layer_names), 4.6 * len(results)))
    for row, r in zip(axes, results):
        ticks = [f"{t} {s}" for t, s in enumerate(r["speakers"])]
        step = max(1, len(ticks) // 20)
        for ax, layer in zip(row, layer_names):
            if layer not in r["layers"]:
                ax.set_axis_off()
                continue
            image = ax.imshow(r["layers"][layer], cmap="viridis", vmin=0, aspect="auto")
            fig.colorbar(image, ax=ax, label="attention weight (mean over heads)")
            target = layer.split("_to_")[-1]
            ax.set(title=f"{r['experiment']} (seed {r['seed']})\n{layer.replace('_to_', ' → ')}",
                   xlabel=f"{target} of utterance (turn, speaker)", ylabel="text of utterance (turn, speaker)")
            ax.set_xticks(range(0, len(ticks), step), ticks[::step], rotation=90, fontsize=7)
            ax.set_yticks(range(0, len(ticks), step), ticks[::step], fontsize=7)
    dialogue = results[0]["dialogue_id"] if results else ""
    data = "; ".join(dict.fromkeys(data_name(r["data"]) for r in results))
    fig.suptitle(f"cross-modal attention in test dialogue {dialogue} — {data}")
    fig.tight_layout()
    save_figure(fig, save_dir, name)
    return fig
