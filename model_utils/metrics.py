"""Evaluation metrics for emotion recognition in conversation: the one place they are defined.

Everything here is numpy only, never Keras or TensorFlow, so tables and reports can be built without loading a
deep-learning backend. The definitions follow scikit-learn's and ``tests/test_metrics.py`` checks them against it.

Conventions (the upstream study's flaws, docs/upstream.md §3 and §5, are not repeated):

- only *scored* positions count: padding and utterances the label scheme leaves out are never in a metric;
- every metric is over all C classes of the scheme (``labels=range(C)``), so the confusion matrix is always C×C
  and the set of classes never depends on what a model happened to predict;
- a ratio with a zero denominator is 0 (scikit-learn's ``zero_division=0``).

All four headline metrics are computed from the confusion matrix by :func:`scores_from_confusion`, which also
works on a stack of matrices; that is what makes :func:`paired_bootstrap` fast.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

METRICS = ("accuracy", "macro_f1", "weighted_f1", "uar")
# How tables and figures name them.
METRIC_LABELS = {"accuracy": "Accuracy", "macro_f1": "Macro-F1", "weighted_f1": "Weighted-F1", "uar": "UAR"}
ALPHA = 0.05  # significance level of paired_bootstrap (and its 95 % interval)


# ------------------------------------------------------------------------------------------------ definitions

def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, with 0 where den is 0."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class from confusion matrices of shape (..., C, C)."""
    cm = np.asarray(cm, np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)  # rows are the true classes
    predicted = cm.sum(axis=-2)  # columns are the predicted classes
    return {
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, support),
        "f1": _ratio(2 * tp, predicted + support),  # = 2PR / (P + R), and 0 when both are 0
        "support": support,
    }


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray]:
    """The headline :data:`METRICS` from confusion matrices of shape (..., C, C) (a leading batch is kept).

    accuracy = trace / total; macro_f1 = unweighted mean of per-class F1; weighted_f1 = mean of per-class F1
    weighted by support; uar (unweighted average recall) = macro recall.
    """
    cm = np.asarray(cm, np.float64)
    pc = per_class_scores(cm)
    total = cm.sum(axis=(-2, -1))
    return {
        "accuracy": _ratio(np.trace(cm, axis1=-2, axis2=-1), total),
        "macro_f1": pc["f1"].mean(axis=-1),
        "weighted_f1": _ratio((pc["f1"] * pc["support"]).sum(axis=-1), total),
        "uar": pc["recall"].mean(axis=-1),
    }


# ------------------------------------------------------------------------------------------------ evaluation

def predict_classes(probs: np.ndarray) -> np.ndarray:
    """Class predictions (argmax over the last axis) from probabilities or logits, e.g. (N, T, C) -> (N, T)."""
    return np.asarray(probs).argmax(axis=-1).astype(np.int64)


def scored(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """The flat true and predicted labels at the scored positions (all positions when ``mask`` is None)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    if mask is None:
        if (y_true < 0).any():
            raise ValueError("y_true has negative (unscored) labels: pass the dataset's mask")
        return y_true.ravel().astype(np.int64), y_pred.ravel().astype(np.int64)
    mask = np.asarray(mask, bool)
    if mask.shape != y_true.shape:
        raise ValueError(f"mask {mask.shape} and labels {y_true.shape} differ in shape")
    return y_true[mask].astype(np.int64), y_pred[mask].astype(np.int64)


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C×C counts (rows = true, columns = predicted) of flat label arrays."""
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has classes outside 0..{num_classes - 1} at scored positions")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, mask: np.ndarray | None, class_names: Sequence[str]
             ) -> dict:
    """All metrics over the scored positions, JSON-ready.

    ``y_true``/``y_pred`` are (N, T) class indices with a boolean ``mask`` of scored positions, or flat arrays
    with ``mask=None``. Returns the :data:`METRICS`, ``n`` (scored utterances), ``per_class``
    (precision/recall/f1/support by class name), ``confusion_matrix`` (C×C counts, rows = true) and
    ``class_names``.
    """
    yt, yp = scored(y_true, y_pred, mask)
    if yt.size == 0:
        raise ValueError("no scored positions to evaluate")
    names = list(class_names)
    cm = confusion(yt, yp, len(names))
    pc = per_class_scores(cm)
    out: dict = {"n": int(yt.size)}
    out.update({m: float(v) for m, v in scores_from_confusion(cm).items()})
    out["per_class"] = {
        c: {"precision": float(pc["precision"][i]), "recall": float(pc["recall"][i]),
            "f1": float(pc["f1"][i]), "support": int(pc["support"][i])}
        for i, c in enumerate(names)
    }
    out["confusion_matrix"] = cm.tolist()
    out["class_names"] = names
    return out


def cross_entropy(probs: np.ndarray, labels: np.ndarray, mask: np.ndarray, eps: float = 1e-7) -> float:
    """Mean cross-entropy ``-log p(true class)`` over the scored positions (``mask``) of (N, T, C) probabilities and
    (N, T) labels; probabilities are clipped to ``[eps, 1]``. Positions outside ``mask`` are never read, whatever
    they hold (a model's zero rows at padding included)."""
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("no scored positions to compute a cross-entropy over")
    p = np.take_along_axis(np.asarray(probs, np.float64)[mask], np.asarray(labels)[mask][:, None], axis=-1)[:, 0]
    return float(-np.log(np.clip(p, eps, 1.0)).mean())


def seed_std(values) -> float:
    """The spread over seeds every table reports: the sample standard deviation (ddof=1) of ``values`` (one number
    per seed), 0.0 for a single seed."""
    values = np.asarray(values, np.float64)
    return float(values.std(ddof=1)) if values.size > 1 else 0.0


def summarize(per_seed: Sequence[dict]) -> dict[str, dict]:
    """Mean, :func:`seed_std` and per-seed values of each of METRICS."""
    if not per_seed:
        raise ValueError("summarize needs at least one result")
    out = {}
    for m in METRICS:
        values = np.array([r[m] for r in per_seed], np.float64)
        out[m] = {"mean": float(values.mean()), "std": seed_std(values), "per_seed": values.tolist()}
    return out


# ------------------------------------------------------------------------------------------------ comparison

def _dialogue_confusions(yt: np.ndarray, yp: np.ndarray, g: np.ndarray, n_groups: int, c: int) -> np.ndarray:
    """(G, C*C) confusion counts per dialogue, flattened."""
    idx = (g * c + yt) * c + yp
    return np.bincount(idx, minlength=n_groups * c * c).reshape(n_groups, c * c).astype(np.float64)


def paired_bootstrap(y_true: np.ndarray, pred_a, pred_b, mask: np.ndarray | None = None,
                     groups: np.ndarray | None = None, metric: str = "macro_f1", n_boot: int = 2000,
                     seed: int = 0, num_classes: int | None = None) -> dict:
    """Paired bootstrap of ``metric(b) - metric(a)`` on the same test set, resampling dialogues.

    ``pred_a``/``pred_b`` are prediction arrays shaped like ``y_true``, or lists of them (one per seed): a
    system's statistic is then the mean over its seeds of the metric on the resample. ``groups`` gives the
    dialogue of every position; for (N, T) inputs it defaults to the row. Each resample draws G dialogues with
    replacement (the same draw for both systems) and sums their per-dialogue confusion matrices. ``num_classes``
    defaults to one more than the largest class seen.

    Returns ``diff`` (observed b - a), ``ci95`` (percentile interval of the resampled differences), ``p_value``
    (two-sided, ``2 * min(P(d <= 0), P(d >= 0))`` with the +1 correction) and ``significant`` (p < 0.05).
    Raises ``ValueError`` for an unknown metric or ``n_boot`` < 1.
    """
    stats, n_groups, n_seeds = _resampled(y_true, {"a": pred_a, "b": pred_b}, mask, groups, metric, n_boot, seed,
                                          num_classes)
    return _verdict(stats["b"] - stats["a"], metric, n_boot, n_groups) | {"n_seeds": [n_seeds["a"], n_seeds["b"]]}


def contrast_bootstrap(y_true: np.ndarray, systems: dict, weights: dict[str, float], mask: np.ndarray | None = None,
                       groups: np.ndarray | None = None, metric: str = "macro_f1", n_boot: int = 2000,
                       seed: int = 0, num_classes: int | None = None) -> dict:
    """Paired bootstrap of a contrast ``Σ weights[k] · metric(systems[k])`` over the same test set: every system
    (predictions, or a list of them per seed, as in :func:`paired_bootstrap`) sees the same resamples of dialogues.

    With ``weights={"a_missing": 1, "a_intact": -1, "b_missing": -1, "b_intact": 1}`` it asks whether system a
    loses less than system b when a modality goes missing (a difference of differences). Returns what
    :func:`paired_bootstrap` does, ``diff`` being the observed contrast."""
    unknown = sorted(set(weights) - set(systems))
    if unknown:
        raise ValueError(f"weights name systems {unknown} that are not given (systems: {sorted(systems)})")
    stats, n_groups, n_seeds = _resampled(y_true, systems, mask, groups, metric, n_boot, seed, num_classes)
    contrast = sum(float(w) * stats[k] for k, w in weights.items())
    return _verdict(contrast, metric, n_boot, n_groups) | {"n_seeds": n_seeds, "weights": dict(weights)}


def _resampled(y_true, systems: dict, mask, groups, metric: str, n_boot: int, seed: int, num_classes: int | None
               ) -> tuple[dict[str, np.ndarray], int, dict[str, int]]:
    """Each system's statistic (its metric, averaged over its seeds) on the observed test set (row 0) and on
    ``n_boot`` resamples of its dialogues (the same draws for every system); the number of dialogues; seeds per
    system."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot (--n-boot) must be an integer >= 1, the number of bootstrap resamples; got "
                         f"{n_boot!r}")
    y_true = np.asarray(y_true)
    preds = {k: [np.asarray(p) for p in (v if isinstance(v, (list, tuple)) else [v])] for k, v in systems.items()}
    if groups is None:
        if y_true.ndim != 2:
            raise ValueError("groups is required for flat inputs (the dialogue of every position)")
        groups = np.broadcast_to(np.arange(y_true.shape[0])[:, None], y_true.shape)
    groups = np.asarray(groups)
    if groups.shape != y_true.shape:
        raise ValueError(f"groups {groups.shape} and labels {y_true.shape} differ in shape")

    yt, g = scored(y_true, groups, mask)
    _, g = np.unique(g, return_inverse=True)
    n_groups = int(g.max()) + 1
    flat = {k: [scored(y_true, p, mask)[1] for p in ps] for k, ps in preds.items()}
    c = num_classes or 1 + int(max(yt.max(), *(yp.max() for ps in flat.values() for yp in ps)))

    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot).astype(np.float64)
    weights = np.vstack([np.ones((1, n_groups)), weights])  # row 0: the observed test set

    def statistic(system: list[np.ndarray]) -> np.ndarray:
        values = []
        for yp in system:
            confusion(yt, yp, c)  # validates the class range
            cms = weights @ _dialogue_confusions(yt, yp, g, n_groups, c)
            values.append(scores_from_confusion(cms.reshape(-1, c, c))[metric])
        return np.mean(values, axis=0)

    return {k: statistic(v) for k, v in flat.items()}, n_groups, {k: len(v) for k, v in preds.items()}


def _verdict(diff: np.ndarray, metric: str, n_boot: int, n_groups: int) -> dict:
    """The observed value (row 0) of a bootstrapped difference, its 95 % percentile interval and two-sided p."""
    observed, boot = float(diff[0]), diff[1:]
    p = min(1.0, 2 * min((1 + (boot <= 0).sum()) / (n_boot + 1), (1 + (boot >= 0).sum()) / (n_boot + 1)))
    lo, hi = np.percentile(boot, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return {
        "metric": metric,
        "diff": observed,
        "ci95": [float(lo), float(hi)],
        "p_value": float(p),
        "significant": bool(p < ALPHA),
        "alpha": ALPHA,
        "n_boot": n_boot,
        "n_dialogues": n_groups,
    }
