"""Figures for the notebooks and reports: confusion matrices, training curves, grids and seed spreads.

Every figure states the data it came from in its title, and can be saved as PNG beside the reports.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .results import RunResult


def _data_tag(result: RunResult) -> str:
    """The data a figure of ``result`` comes from (:func:`reporting.data_name`), and its settings when they are not
    the experiment's own (an epoch cap)."""
    from .reporting import data_name, settings_note

    note = settings_note(result)
    return data_name(result.data) + (f"; {note}" if note else "")


def _save(fig, save_dir: str | Path | None, name: str) -> None:
    if save_dir is not None:
        from data_utils.fileio import atomic_path

        path = Path(save_dir) / f"{name}.png"
        with atomic_path(path, overwrite=True, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")


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
        ax.set_title("row-normalised (recall)" if normalize else f"counts, summed over {len(result.seeds)} seeds")
    fig.suptitle(f"{result.experiment.name} — {_data_tag(result)}, {result.data['label_scheme']}")
    fig.tight_layout()
    _save(fig, save_dir, f"confusion_{result.experiment.name}")
    return fig


def plot_history(result: RunResult, *, save_dir: str | Path | None = None):
    """Training loss and validation macro-F1 per epoch for every seed; each seed's best epoch is marked."""
    fig, (loss_ax, f1_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    for s in result.seeds:
        epochs = [h["epoch"] for h in s.history]
        loss_ax.plot(epochs, [h["loss"] for h in s.history], label=f"seed {s.seed}")
        f1_ax.plot(epochs, [h["val_macro_f1"] for h in s.history], label=f"seed {s.seed}")
        f1_ax.axvline(s.best_epoch, color="grey", lw=0.6, ls=":")
    loss_ax.set(title="training loss (mean CE over real utterances)", xlabel="epoch")
    f1_ax.set(title="validation macro-F1 (dotted: best epoch)", xlabel="epoch")
    f1_ax.legend(fontsize=8)
    fig.suptitle(f"{result.experiment.name} — {_data_tag(result)}")
    fig.tight_layout()
    _save(fig, save_dir, f"history_{result.experiment.name}")
    return fig


def grid_heatmap(grid: pd.DataFrame, *, title: str, save_dir: str | Path | None = None,
                 name: str = "grid", fmt: str = ".3f", annot: Mapping | None = None):
    """A heatmap of an architecture × modality grid of mean scores."""
    fig, ax = plt.subplots(figsize=(1.6 * grid.shape[1] + 2, 0.6 * grid.shape[0] + 1.8))
    sns.heatmap(grid.astype(float), annot=annot if annot is not None else True, fmt=fmt if annot is None else "",
                cmap="viridis", ax=ax, cbar=False)
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, save_dir, name)
    return fig


def plot_grid(table: pd.DataFrame, metric: str = "macro_f1", *, title: str, save_dir: str | Path | None = None,
              name: str = "grid"):
    """Architecture × modality heatmap of a runs table (``reporting.runs_table``): mean ± std of ``metric``."""
    from .reporting import METRIC_LABELS, arch_modality_grid

    mean, std = arch_modality_grid(table, metric), arch_modality_grid(table, metric, std=True)
    annot = mean.map(lambda v: "" if pd.isna(v) else f"{v:.3f}") + std.map(
        lambda v: "" if pd.isna(v) else f"\n± {v:.3f}")
    return grid_heatmap(mean, title=f"{title}: {METRIC_LABELS[metric]} — {table['data'].iloc[0]}",
                        save_dir=save_dir, name=name, annot=annot.to_numpy())


def plot_seeds(results: Mapping[str, RunResult], metric: str = "macro_f1", *, title: str = "",
               save_dir: str | Path | None = None, name: str = "seeds"):
    """Every seed's ``metric`` per experiment (dots) with the mean ± std (bar): how far one run can land."""
    runs = list(results.values())
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(runs) + 2), 3.8))
    for i, r in enumerate(runs):
        values = np.array([s.metrics[metric] for s in r.seeds])
        std = values.std(ddof=1) if values.size > 1 else 0.0
        ax.errorbar(i, values.mean(), yerr=std, fmt="_", color="black", markersize=18, capsize=4, zorder=1)
        ax.scatter([i] * len(values), values, color="#dd8452", zorder=2, s=22)
    ax.set_xticks(range(len(runs)), [r.experiment.name for r in runs], rotation=45, ha="right")
    ax.set_ylabel(metric)
    tag = _data_tag(runs[0]) if runs else ""
    ax.set_title(f"{title} — {tag}" if title else f"per-seed {metric} — {tag}")
    fig.tight_layout()
    _save(fig, save_dir, name)
    return fig
