"""model_utils.metrics: agreement with scikit-learn, masking, summaries and the paired bootstrap."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score

from model_utils.metrics import METRICS, evaluate, paired_bootstrap, predict_classes, summarize

NAMES = ("happy", "angry", "sad", "neutral")
C = len(NAMES)


def _padded(seed: int = 0, n: int = 6, t: int = 15, accuracy: float = 0.6):
    """(N, T) labels with padding (-1) and unscored utterances, predictions right with prob. ``accuracy``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, t + 1, n)
    present = np.arange(t)[None, :] < lengths[:, None]
    mask = present & (rng.random((n, t)) > 0.2)  # some real utterances are left out by the scheme
    labels = np.where(mask, rng.integers(0, C, (n, t)), -1)
    preds = np.where(rng.random((n, t)) < accuracy, labels, rng.integers(0, C, (n, t)))
    preds = np.where(mask, preds, 99)  # garbage wherever nothing is scored
    return labels, preds, mask


def _sklearn(yt, yp) -> dict:
    labels = list(range(C))
    return {
        "accuracy": accuracy_score(yt, yp),
        "macro_f1": f1_score(yt, yp, labels=labels, average="macro", zero_division=0),
        "weighted_f1": f1_score(yt, yp, labels=labels, average="weighted", zero_division=0),
        "uar": recall_score(yt, yp, labels=labels, average="macro", zero_division=0),
    }


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_sklearn(seed):
    labels, preds, mask = _padded(seed)
    yt, yp = labels[mask], preds[mask]
    got = evaluate(labels, preds, mask, NAMES)
    for m, want in _sklearn(yt, yp).items():
        assert got[m] == pytest.approx(want, abs=1e-12), m
    np.testing.assert_array_equal(got["confusion_matrix"], confusion_matrix(yt, yp, labels=range(C)))
    p, r, f, s = precision_recall_fscore_support(yt, yp, labels=range(C), zero_division=0)
    for i, name in enumerate(NAMES):
        assert got["per_class"][name] == pytest.approx(
            {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]}, abs=1e-12)
    assert got["n"] == mask.sum()
    assert set(METRICS) <= set(got)


def test_hand_made_case():
    yt = np.array([0, 0, 1, 1, 2, 3])
    yp = np.array([0, 1, 1, 1, 3, 3])
    got = evaluate(yt, yp, None, NAMES)
    assert got["accuracy"] == pytest.approx(4 / 6)
    # F1 per class: happy 2/3, angry 4/5, sad 0, neutral 2/3
    assert got["macro_f1"] == pytest.approx((2 / 3 + 4 / 5 + 0 + 2 / 3) / 4)
    assert got["uar"] == pytest.approx((0.5 + 1 + 0 + 1) / 4)
    assert got["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]


def test_unscored_positions_never_count():
    labels, preds, mask = _padded(1)
    base = evaluate(labels, preds, mask, NAMES)
    rng = np.random.default_rng(7)
    other = np.where(mask, preds, rng.integers(-5, 50, preds.shape))  # different garbage off the mask
    relabel = np.where(mask, labels, rng.integers(0, C, labels.shape))  # even valid-looking labels off the mask
    assert evaluate(relabel, other, mask, NAMES) == base
    flat = evaluate(labels[mask], preds[mask], None, NAMES)
    assert flat == base


def test_unmasked_negative_labels_are_refused():
    labels, preds, _ = _padded(2)
    with pytest.raises(ValueError, match="mask"):
        evaluate(labels, preds, None, NAMES)


def test_out_of_range_scored_prediction_is_refused():
    with pytest.raises(ValueError, match="outside"):
        evaluate(np.array([0, 1]), np.array([0, 4]), None, NAMES)


def test_never_predicted_class_still_gives_full_matrix():
    yt = np.array([0, 1, 2, 3, 3])
    yp = np.array([0, 0, 0, 0, 0])  # only class 0 predicted
    got = evaluate(yt, yp, None, NAMES)
    cm = np.array(got["confusion_matrix"])
    assert cm.shape == (C, C)
    np.testing.assert_array_equal(cm, confusion_matrix(yt, yp, labels=range(C)))
    assert got["per_class"]["sad"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert got["macro_f1"] == pytest.approx(f1_score(yt, yp, labels=range(C), average="macro", zero_division=0))


def test_class_absent_from_truth_and_predictions_counts_as_zero():
    yt = np.array([0, 1, 1, 0])
    yp = np.array([0, 1, 0, 0])
    got = evaluate(yt, yp, None, NAMES)  # sad and neutral never occur: averaged over all 4 classes anyway
    assert got["macro_f1"] == pytest.approx(f1_score(yt, yp, labels=range(C), average="macro", zero_division=0))
    assert got["uar"] == pytest.approx((1.0 + 0.5) / 4)


def test_predict_classes():
    probs = np.array([[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]])
    np.testing.assert_array_equal(predict_classes(probs), [[1, 0]])


def test_summarize():
    runs = [{m: v for m in METRICS} for v in (0.5, 0.7, 0.6)]
    s = summarize(runs)
    assert set(s) == set(METRICS)
    assert s["macro_f1"]["mean"] == pytest.approx(0.6)
    assert s["macro_f1"]["std"] == pytest.approx(np.std([0.5, 0.7, 0.6], ddof=1))
    assert s["uar"]["per_seed"] == [0.5, 0.7, 0.6]
    assert summarize(runs[:1])["accuracy"] == {"mean": 0.5, "std": 0.0, "per_seed": [0.5]}


def test_bootstrap_identical_systems():
    labels, preds, mask = _padded(3, n=10)
    out = paired_bootstrap(labels, preds, preds.copy(), mask, n_boot=500)
    assert out["diff"] == 0.0 and out["ci95"] == [0.0, 0.0]
    assert out["p_value"] == 1.0 and not out["significant"]


def test_bootstrap_clearly_better_system():
    labels, weak, mask = _padded(4, n=30, t=40, accuracy=0.3)
    _, strong, _ = _padded(4, n=30, t=40, accuracy=0.9)  # same seed: same labels and mask
    out = paired_bootstrap(labels, weak, strong, mask, metric="macro_f1", n_boot=1000)
    assert out["significant"] and out["p_value"] < 0.01
    lo, hi = out["ci95"]
    assert out["diff"] > 0.3 and 0 < lo < out["diff"] < hi
    observed = evaluate(labels, strong, mask, NAMES)["macro_f1"] - evaluate(labels, weak, mask, NAMES)["macro_f1"]
    assert out["diff"] == pytest.approx(observed)
    reverse = paired_bootstrap(labels, strong, weak, mask, n_boot=1000)
    assert reverse["diff"] == pytest.approx(-out["diff"]) and reverse["significant"]


def test_bootstrap_is_deterministic_and_seeded():
    labels, a, mask = _padded(5, n=12, accuracy=0.5)
    _, b, _ = _padded(6, n=12, accuracy=0.6)
    b = np.where(mask, np.where(np.random.default_rng(0).random(mask.shape) < 0.55, labels, b), b)
    first = paired_bootstrap(labels, a, b, mask, n_boot=300, seed=11)
    assert paired_bootstrap(labels, a, b, mask, n_boot=300, seed=11) == first
    assert paired_bootstrap(labels, a, b, mask, n_boot=300, seed=12) != first


def test_bootstrap_multi_seed_and_groups():
    labels, a1, mask = _padded(7, n=8, accuracy=0.5)
    a2 = np.where(mask, (a1 + 1) % C, 99)
    _, b1, _ = _padded(7, n=8, accuracy=0.8)
    out = paired_bootstrap(labels, [a1, a2], [b1], mask, metric="accuracy", n_boot=200)
    mean_a = np.mean([evaluate(labels, p, mask, NAMES)["accuracy"] for p in (a1, a2)])
    assert out["diff"] == pytest.approx(evaluate(labels, b1, mask, NAMES)["accuracy"] - mean_a)
    assert out["n_seeds"] == [2, 1]
    # flat inputs with explicit dialogue groups give the same answer as the (N, T) layout
    rows = np.broadcast_to(np.arange(labels.shape[0])[:, None], labels.shape)
    flat = paired_bootstrap(labels[mask], [a1[mask], a2[mask]], [b1[mask]], None, rows[mask], metric="accuracy",
                            n_boot=200)
    assert flat == out


def test_bootstrap_resamples_whole_dialogues():
    # one dialogue where b is perfect, every other dialogue identical: b - a is never negative on a resample
    labels, a, mask = _padded(8, n=10, accuracy=0.4)
    b = a.copy()
    b[0] = np.where(mask[0], labels[0], b[0])
    out = paired_bootstrap(labels, a, b, mask, metric="accuracy", n_boot=500)
    assert out["ci95"][0] >= 0.0 and out["diff"] > 0


def test_metrics_module_does_not_import_tensorflow():
    code = "import sys, model_utils.metrics; assert not {'tensorflow', 'keras'} & set(sys.modules), sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
