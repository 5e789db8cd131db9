"""The upstream study's protocol flaws (``docs/upstream.md`` §1.7, §3, §5), rerun beside the corrected protocol.

``archive/upstream_flaws.ipynb`` shows how much each one moves the numbers:

(a) validation leakage (§1.7, B5): a shuffled dataset split by ``take``/``skip`` and reshuffled every epoch, so
    each epoch draws a new "validation" set that is mostly that epoch's training data. :func:`leaky_split_overlap`
    simulates the split; :func:`train_leaky` trains under it and scores the leaky validation set, a held-out
    validation split and the test set;
(b) the pad class (§1.6, B4, B10): a (C+1)-way softmax with padding as class 0 and the loss over all T positions,
    against the same architecture with the masked C-way loss (:func:`train_pad_class`);
(c) TIM-Net's evaluation mask ``(y_true != 0) & (y_pred != 0)``, which drops the real utterances predicted as
    padding (§3, B2): :func:`score_pad_predictions` scores the same predictions both ways;
(d) one unseeded run against mean ± std over seeds (B7): :func:`seed_spread`, :func:`single_run_flips`.

Upstream's encoding is used where its flaws live: ``y5`` arrays hold 0 for padding and ``k + 1`` for class k.
The fixed-epoch demos (a, b) train as upstream did (no early stopping, no selection) so only the flaw differs.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from model_utils import metrics

UPSTREAM_EPOCHS = 10  # NB1-NB3: 10 epochs, no callbacks (§2.0)
UPSTREAM_TRAIN_FRACTION = 0.8  # take(96) of 120 training dialogues, skip the remaining 24 (§1.7)
BATCH_SIZE = 32
UPSTREAM_MODEL = "upstream: C+1 classes (pad = 0), loss over all positions"
OURS_MODEL = "ours: C classes, loss over scored utterances"
ALL_POSITIONS = "all positions, padding counted (NB1's Keras accuracy)"
NB1_MASK = "NB1 mask: (y_true != 0) & (y_pred != 0)"
HONEST = "every real utterance; a pad prediction is an error"


# ------------------------------------------------------------------------------------------------ (a) leakage

def leaky_split_overlap(n_dialogues: int = 120, train_fraction: float = UPSTREAM_TRAIN_FRACTION,
                        epochs: int = UPSTREAM_EPOCHS, seed: int = 0) -> pd.DataFrame:
    """Simulate upstream's split: every epoch, the train iterator takes the first k dialogues of one fresh
    shuffle and the validation iterator skips the first k of another (Keras builds a new iterator for each,
    and ``shuffle`` reshuffles every iteration).

    Per epoch: how many validation dialogues are also in that epoch's training set (expected
    ``(n - k) * k / n``), and how many distinct dialogues have been trained on so far.
    """
    rng = np.random.default_rng(seed)
    k = int(train_fraction * n_dialogues)
    seen: set[int] = set()
    rows = []
    for epoch in range(1, epochs + 1):
        train, valid = rng.permutation(n_dialogues)[:k], rng.permutation(n_dialogues)[k:]
        seen.update(train.tolist())
        overlap = len(set(train.tolist()) & set(valid.tolist()))
        rows.append({"epoch": epoch, "valid_dialogues": n_dialogues - k, "valid_in_this_epochs_train": overlap,
                     "share": overlap / (n_dialogues - k), "trained_on_so_far": len(seen)})
    return pd.DataFrame(rows).set_index("epoch")


@dataclass
class LeakyRun:
    experiment: str
    seed: int
    history: pd.DataFrame  # per epoch: valid_in_train, leaky_valid_macro_f1, heldout_valid_macro_f1
    test: dict  # metrics.evaluate on the test split after the last epoch


def train_leaky(experiment: str, ds, *, epochs: int = UPSTREAM_EPOCHS, seed: int = 0,
                train_fraction: float = UPSTREAM_TRAIN_FRACTION) -> LeakyRun:
    """Train ``experiment`` for ``epochs`` epochs under upstream's leaky split of the training dialogues.

    The corrected protocol's validation split (``runner.prepare_data``) is held out first and never trained on,
    so every epoch scores the leaky "validation" set (what upstream's logs showed) beside a held-out one.
    The test split is scored once, after the last epoch.
    """
    from model_utils.training import targets

    exp, model, train, valid, test = _setup(experiment, ds, seed)
    x, (y, w) = _inputs(model, train, exp.modalities), targets(train)
    rng = np.random.default_rng(seed)
    n = len(train)
    k = int(train_fraction * n)
    rows = []
    for epoch in range(1, epochs + 1):
        take, skip = rng.permutation(n)[:k], rng.permutation(n)[k:]
        model.fit({name: a[take] for name, a in x.items()}, y[take], sample_weight=w[take], batch_size=BATCH_SIZE,
                  epochs=1, shuffle=False, verbose=0)
        leaky = metrics.evaluate(train.labels[skip], _predict(model, x, rows=skip), train.mask[skip],
                                 train.class_names)
        heldout = _evaluate(model, valid, exp.modalities)
        rows.append({"epoch": epoch, "valid_in_train": len(set(take.tolist()) & set(skip.tolist())),
                     "leaky_valid_macro_f1": leaky["macro_f1"], "heldout_valid_macro_f1": heldout["macro_f1"]})
    return LeakyRun(exp.name, seed, pd.DataFrame(rows).set_index("epoch"), _evaluate(model, test, exp.modalities))


def leak_table(runs: list[LeakyRun]) -> pd.DataFrame:
    """Per seed, after the last epoch: leaky validation, held-out validation and test macro-F1, and the gap
    between what upstream's logs showed (leaky validation) and the held-out test score; then the mean."""
    rows = [{"seed": r.seed, "leaky_valid_macro_f1": r.history["leaky_valid_macro_f1"].iloc[-1],
             "heldout_valid_macro_f1": r.history["heldout_valid_macro_f1"].iloc[-1],
             "test_macro_f1": r.test["macro_f1"]} for r in runs]
    table = pd.DataFrame(rows)
    table["leaky_minus_test"] = table["leaky_valid_macro_f1"] - table["test_macro_f1"]
    table = table.set_index("seed")
    table.loc["mean"] = table.mean()
    return table


# ------------------------------------------------------------------------------------------------ (b) pad class

def upstream_targets(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upstream's labels (N, T): 0 at padding, class + 1 at scored utterances; its one-hot (N, T, C + 1)
    targets; and sample weights that are 1 at every position (the loss sees padding), 0 only at real
    utterances a label scheme leaves unscored (upstream had none)."""
    y5 = np.where(ds.mask, ds.labels + 1, 0).astype(np.int64)
    onehot = np.eye(ds.num_classes + 1, dtype=np.float32)[y5]
    weight = (ds.mask | ~ds.present).astype(np.float32)
    return y5, onehot, weight


@dataclass
class PadRun:
    experiment: str
    seed: int
    y5: np.ndarray  # (N, T) test labels in upstream's encoding
    real: np.ndarray  # (N, T) scored real utterances of the test split
    scoreable: np.ndarray  # (N, T) positions upstream's all-position accuracy counts (all but unscored utterances)
    upstream_pred5: np.ndarray  # (N, T) the (C+1)-way model's predictions, 0 = pad
    ours_pred: np.ndarray  # (N, T) the masked C-way model's predictions
    class_names: tuple[str, ...]


def train_pad_class(experiment: str, ds, *, epochs: int = UPSTREAM_EPOCHS, seed: int = 0) -> PadRun:
    """Train ``experiment``'s architecture twice, ``epochs`` epochs each on the training split with the same
    seed: upstream's way, a (C+1)-way softmax with padding as class 0 and the loss averaged over all T positions;
    and ours, a C-way softmax with the loss averaged over scored utterances. Returns both test predictions."""
    from model_utils.training import targets

    exp, ours, train, _, test = _setup(experiment, ds, seed)
    x = _inputs(ours, train, exp.modalities)
    y, w = targets(train)
    ours.fit(x, y, sample_weight=w, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0)

    _, upstream, *_ = _setup(experiment, ds, seed, extra_classes=1)
    _, y5, w5 = upstream_targets(train)
    upstream.fit(x, y5, sample_weight=w5, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0)

    xt = _inputs(ours, test, exp.modalities)
    return PadRun(exp.name, seed, upstream_targets(test)[0], test.mask, test.mask | ~test.present,
                  _predict(upstream, xt), _predict(ours, xt), test.class_names)


# ------------------------------------------------------------------------------------------------ (c) NB1's mask

def score_pad_predictions(y5: np.ndarray, pred5: np.ndarray, real: np.ndarray, class_names,
                          scoreable: np.ndarray | None = None) -> pd.DataFrame:
    """Score (C+1)-way predictions (0 = pad) the ways upstream did and the honest way.

    Rows: 'all positions' (Keras' accuracy as NB1 logged it: padding counted, a correct pad is a hit; needs
    ``scoreable``), 'NB1 mask' (``(y_true != 0) & (y_pred != 0)``: real utterances predicted as pad are dropped)
    and 'honest' (every real utterance; a pad prediction is an error). Macro-F1 is over the C real classes.
    """
    y5, pred5, real = np.asarray(y5), np.asarray(pred5), np.asarray(real, bool)
    c = len(class_names)
    rows = {}
    if scoreable is not None:
        sel = np.asarray(scoreable, bool)
        rows[ALL_POSITIONS] = {
            "n": int(sel.sum()), "accuracy": float((y5[sel] == pred5[sel]).mean()), "macro_f1": np.nan}
    nb1 = real & (y5 != 0) & (pred5 != 0)
    scores = metrics.evaluate(y5 - 1, pred5 - 1, nb1, class_names)
    rows[NB1_MASK] = {k: scores[k] for k in ("n", "accuracy", "macro_f1")}
    cm = metrics.confusion(y5[real].astype(np.int64), pred5[real].astype(np.int64), c + 1)
    f1 = metrics.per_class_scores(cm)["f1"][1:]
    rows[HONEST] = {
        "n": int(real.sum()), "accuracy": float(np.trace(cm) / cm.sum()), "macro_f1": float(f1.mean())}
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("scoring")
    table["predicted_pad"] = int((real & (pred5 == 0)).sum())
    return table


def pad_class_table(runs: list[PadRun]) -> pd.DataFrame:
    """(b) and (c) over seeds: the (C+1)-way model scored three ways and our C-way model scored honestly;
    mean and std over seeds of accuracy and macro-F1, and the real utterances predicted as pad."""
    frames = []
    for r in runs:
        upstream = score_pad_predictions(r.y5, r.upstream_pred5, r.real, r.class_names, r.scoreable)
        ours = metrics.evaluate(r.y5 - 1, r.ours_pred, r.real, r.class_names)
        ours = pd.DataFrame([{"n": ours["n"], "accuracy": ours["accuracy"], "macro_f1": ours["macro_f1"],
                              "predicted_pad": 0}], index=[HONEST])
        frames.append(pd.concat({UPSTREAM_MODEL: upstream, OURS_MODEL: ours}).assign(seed=r.seed))
    grouped = pd.concat(frames).rename_axis(["model", "scoring"]).groupby(level=[0, 1], sort=False)
    table = pd.DataFrame({"n": grouped["n"].first().astype(int), "predicted_pad": grouped["predicted_pad"].mean()})
    for m in ("accuracy", "macro_f1"):
        table[m] = grouped[m].mean()
        table[f"{m}_std"] = grouped[m].agg(metrics.seed_std)
    return table


# ------------------------------------------------------------------------------------------------ (d) seeds

def seed_spread(results, metric: str = "macro_f1") -> pd.DataFrame:
    """Per experiment: every seed's ``metric``, mean ± std, and the range one unseeded run could land in."""
    rows = {}
    for name, r in results.items():
        values = np.array([s.metrics[metric] for s in r.seeds])
        rows[name] = {"seeds": len(values), "mean": values.mean(),
                      "std": metrics.seed_std(values),
                      "min": values.min(), "max": values.max(), "range": np.ptp(values),
                      "per_seed": ", ".join(f"{v:.4f}" for v in values)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("experiment")


def single_run_flips(a, b, metric: str = "macro_f1") -> pd.DataFrame:
    """If each model had been run once (as upstream did), how often would b − a have the opposite sign from the
    difference of the means? Every (seed of a, seed of b) pair counts as one possible pair of single runs."""
    va = np.array([s.metrics[metric] for s in a.seeds])
    vb = np.array([s.metrics[metric] for s in b.seeds])
    mean_diff = vb.mean() - va.mean()
    diffs = np.array([y - x for x, y in product(va, vb)])
    return pd.DataFrame([{"metric": metric, "mean_diff": mean_diff, "single_run_min": diffs.min(),
                          "single_run_max": diffs.max(), "pairs": len(diffs),
                          "opposite_sign": int((np.sign(diffs) != np.sign(mean_diff)).sum())}],
                        index=pd.Index([f"{b.experiment.name} − {a.experiment.name}"], name="comparison"))


# ------------------------------------------------------------------------------------------------ plots

def plot_leak(runs: list[LeakyRun], *, save_dir: str | Path | None = None, name: str = "upstream_leak",
              data_tag: str = ""):
    """Leaky vs held-out validation macro-F1 per epoch (one line per seed); the test score after training."""
    import matplotlib.pyplot as plt

    from model_utils.report import save_figure

    fig, ax = plt.subplots(figsize=(7, 3.8))
    for i, r in enumerate(runs):
        h = r.history
        ax.plot(h.index, h["leaky_valid_macro_f1"], "o-", color="#c44e52", alpha=0.8, markersize=3,
                label="leaky 'validation' (upstream)" if i == 0 else None)
        ax.plot(h.index, h["heldout_valid_macro_f1"], "o-", color="#4c72b0", alpha=0.8, markersize=3,
                label="held-out validation" if i == 0 else None)
        ax.scatter([h.index[-1]], [r.test["macro_f1"]], color="black", zorder=3,
                   label="test, after the last epoch" if i == 0 else None)
    ax.set(xlabel="epoch", ylabel="macro-F1", title=f"{runs[0].experiment}: upstream's take/skip split — {data_tag}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, save_dir, name)
    return fig


# ------------------------------------------------------------------------------------------------ helpers

def _setup(experiment: str, ds, seed: int, extra_classes: int = 0):
    """The experiment, a freshly seeded and compiled model (C + ``extra_classes`` outputs) and the protocol's
    train / validation / test splits."""
    from model_utils.architectures import build_for
    from model_utils.experiments import get_experiment
    from model_utils.runner import prepare_data
    from model_utils.training import compile_model, set_seed

    exp = get_experiment(experiment)
    train, valid, test = prepare_data(exp, ds)
    set_seed(seed)
    model = build_for(exp, train, num_classes=train.num_classes + extra_classes, max_len=train.max_len)
    compile_model(model, exp.train_config())
    return exp, model, train, valid, test


def _inputs(model, ds, modalities) -> dict[str, np.ndarray]:
    from model_utils.training import model_inputs

    return model_inputs(model, ds, modalities)


def _predict(model, x: dict, rows: np.ndarray | None = None) -> np.ndarray:
    """Class predictions (N, T) of ``model`` on full-length inputs ``x`` (optionally only these rows)."""
    if rows is not None:
        x = {name: a[rows] for name, a in x.items()}
    return metrics.predict_classes(model.predict(x, batch_size=BATCH_SIZE, verbose=0))


def _evaluate(model, ds, modalities) -> dict:
    return metrics.evaluate(ds.labels, _predict(model, _inputs(model, ds, modalities)), ds.mask, ds.class_names)
