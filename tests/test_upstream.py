"""archive/upstream.py: the upstream protocol's flaws, checked against docs/upstream.md's numbers where it has them."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from data_utils.dataset import load_dataset

from conftest import import_archive

upstream = import_archive("upstream")

CLASSES = ("hap", "ang", "sad", "neu")

# docs/upstream.md §4.1, NB1 (TIM-Net): transcribed confusion matrices (rows true hap/ang/sad/neu) of the utterances
# the biased mask kept, the real utterances predicted as padding per true class, the printed accuracy and macro-F1
# (biased mask) and the honest ones (every real utterance, pad predictions are errors).
NB1 = {
    "all": ([[278, 56, 29, 67], [21, 438, 17, 63], [19, 52, 142, 32], [53, 133, 29, 154]], [13, 12, 0, 15],
            (0.6393, 0.6194), (0.6235, 0.6125)),
    "text": ([[230, 71, 33, 62], [9, 435, 21, 53], [13, 73, 127, 31], [37, 137, 28, 146]], [47, 33, 1, 36],
             (0.6228, 0.5984), (0.5779, 0.5766)),
    "audio": ([[137, 176, 0, 0], [73, 365, 0, 0], [168, 50, 0, 0], [98, 149, 0, 0]], [130, 113, 27, 137],
              (0.4128, 0.2417), (0.3093, 0.2159)),
    "visual": ([[0, 299, 0, 0], [0, 443, 0, 0], [0, 237, 0, 0], [0, 283, 0, 0]], [144, 108, 8, 101],
               (0.3510, 0.1299), (0.2730, 0.1222)),
}


def _nb1_predictions(cm, pad):
    """Flat (1, N) labels and predictions in upstream's encoding (0 = pad) that produce ``cm`` and ``pad``."""
    y, p = [], []
    for i, row in enumerate(cm):
        for j, n in enumerate(row):
            y += [i + 1] * n
            p += [j + 1] * n
        y += [i + 1] * pad[i]
        p += [0] * pad[i]
    return np.array([y]), np.array([p])


@pytest.mark.parametrize("name", NB1)
def test_nb1_mask_and_honest_scoring_reproduce_protocol_numbers(name):
    cm, pad, printed, honest = NB1[name]
    y5, pred5 = _nb1_predictions(cm, pad)
    table = upstream.score_pad_predictions(y5, pred5, np.ones_like(y5, bool), CLASSES)
    biased, fair = table.loc[upstream.NB1_MASK], table.loc[upstream.HONEST]
    assert biased["n"] == np.sum(cm) and fair["n"] == 1623
    assert (round(biased["accuracy"], 4), round(biased["macro_f1"], 4)) == printed
    assert (round(fair["accuracy"], 4), round(fair["macro_f1"], 4)) == honest
    assert (table["predicted_pad"] == sum(pad)).all()


def test_all_position_accuracy_counts_correct_padding_as_hits():
    y5 = np.array([[1, 2, 0, 0]])
    pred5 = np.array([[1, 0, 0, 3]])
    real = y5 > 0
    table = upstream.score_pad_predictions(y5, pred5, real, ("a", "b", "c"), scoreable=np.ones_like(real))
    row = table.loc[upstream.ALL_POSITIONS]
    assert row["n"] == 4 and row["accuracy"] == 0.5 and np.isnan(row["macro_f1"])
    assert table.loc[upstream.NB1_MASK, "n"] == 1 and table.loc[upstream.HONEST, "accuracy"] == 0.5


def test_upstream_targets_put_padding_in_class_zero_and_weigh_every_position():
    ds = load_dataset("synthetic-small", scheme="standard4")  # 'fru' utterances are real but unscored
    y5, onehot, weight = upstream.upstream_targets(ds)
    assert (y5[~ds.present] == 0).all() and (y5[ds.mask] == ds.labels[ds.mask] + 1).all()
    assert onehot.shape == ds.labels.shape + (ds.num_classes + 1,)
    assert (onehot.argmax(-1) == y5).all()
    assert (weight[~ds.present] == 1).all() and (weight[ds.mask] == 1).all()
    assert (weight[ds.present & ~ds.mask] == 0).all() and (ds.present & ~ds.mask).any()


def test_leaky_split_overlap_matches_the_protocols_probe():
    table = upstream.leaky_split_overlap(n_dialogues=120, epochs=10)
    assert (table["valid_dialogues"] == 24).all() and table["trained_on_so_far"].iloc[0] == 96
    assert table["trained_on_so_far"].is_monotonic_increasing and table["trained_on_so_far"].iloc[-1] == 120
    long_run = upstream.leaky_split_overlap(n_dialogues=120, epochs=3000, seed=1)
    assert long_run["valid_in_this_epochs_train"].mean() == pytest.approx(24 * 96 / 120, abs=0.2)  # 19.2


def _run(name, values):
    return SimpleNamespace(experiment=SimpleNamespace(name=name),
                           seeds=[SimpleNamespace(metrics={"macro_f1": v}) for v in values])


def test_seed_spread_and_single_run_flips():
    a, b = _run("a", [0.70, 0.72, 0.74]), _run("b", [0.69, 0.73, 0.77])
    spread = upstream.seed_spread({"a": a, "b": b})
    assert spread.loc["a", "mean"] == pytest.approx(0.72) and spread.loc["b", "range"] == pytest.approx(0.08)
    assert spread.loc["a", "std"] == pytest.approx(0.02)
    flips = upstream.single_run_flips(a, b).iloc[0]
    assert flips.name == "b − a" and flips["pairs"] == 9
    assert flips["mean_diff"] == pytest.approx(0.01)
    # single-run differences b_j - a_i that are <= 0: 0.69 vs all three, 0.73 vs 0.74
    assert flips["opposite_sign"] == 4
    assert flips["single_run_min"] == pytest.approx(-0.05) and flips["single_run_max"] == pytest.approx(0.07)


@pytest.fixture(scope="module")
def small():
    return load_dataset("synthetic-small")


def test_train_leaky_scores_leaky_heldout_and_test(small):
    run = upstream.train_leaky("cnn-text", small, epochs=2, seed=0)
    assert list(run.history.index) == [1, 2]
    assert set(run.history.columns) == {"valid_in_train", "leaky_valid_macro_f1", "heldout_valid_macro_f1"}
    assert run.history[["leaky_valid_macro_f1", "heldout_valid_macro_f1"]].stack().between(0, 1).all()
    assert run.test["n"] == int(small.subset("test").mask.sum())
    table = upstream.leak_table([run, run])
    assert list(table.index) == [0, 0, "mean"]
    assert table.loc["mean", "leaky_minus_test"] == pytest.approx(
        run.history["leaky_valid_macro_f1"].iloc[-1] - run.test["macro_f1"])


def test_train_pad_class_gives_both_models_predictions_on_the_test_split(small):
    runs = [upstream.train_pad_class("cnn-text", small, epochs=1, seed=s) for s in (0, 1)]
    r = runs[0]
    test = small.subset("test")
    assert r.upstream_pred5.shape == r.ours_pred.shape == test.labels.shape
    assert r.upstream_pred5.max() <= test.num_classes and r.ours_pred.max() < test.num_classes
    table = upstream.pad_class_table(runs)
    assert list(table.index.get_level_values(0).unique()) == [upstream.UPSTREAM_MODEL, upstream.OURS_MODEL]
    assert table.loc[(upstream.OURS_MODEL, upstream.HONEST), "n"] == test.mask.sum()
    assert table.loc[(upstream.UPSTREAM_MODEL, upstream.ALL_POSITIONS), "n"] == test.labels.size
    assert {"accuracy_std", "macro_f1_std"} <= set(table.columns)
