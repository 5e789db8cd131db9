"""model_utils.training: masked loss, seeds, early stopping on validation, class weights, no test data in fit."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from data_utils.dataset import from_corpus, with_validation_split
from data_utils.synthetic import SyntheticConfig, generate_corpus
from model_utils import metrics, training
from model_utils.metrics import METRICS
from model_utils.training import (TrainConfig, class_weights, evaluate_model, fit, make_loss, model_inputs, targets,
                                  train_epochs)

MODALITIES = ("text",)
FAST = TrainConfig(epochs=6, patience=6, learning_rate=1e-2, batch_size=4)


@pytest.fixture(scope="module")
def ds():
    """12 train (3 held out for validation) and 4 test dialogues of 4-20 utterances; 'fru' is left unscored."""
    config = SyntheticConfig(n_train=12, n_test=4, mean_length=12, sd_length=4, min_length=4, max_length=20)
    return with_validation_split(from_corpus(generate_corpus(seed=1, config=config), "standard4"), 0.25)


def _model(ds, masking: bool = False, any_length: bool = False) -> keras.Model:
    """A per-utterance classifier: text (T, D) -> Dense -> softmax over the real classes. ``present`` is unused.
    With ``any_length`` T is left open, so training batches are trimmed to their longest dialogue."""
    t = None if any_length else ds.max_len
    text = keras.Input((t, ds.dims["text"]), name="text")
    present = keras.Input((t,), name="present")
    x = keras.layers.Masking()(text) if masking else text
    x = keras.layers.Dense(16, activation="relu")(x)
    return keras.Model([text, present], keras.layers.Dense(ds.num_classes, activation="softmax")(x))


def _train(ds, config: TrainConfig = FAST, seed: int = 0, any_length: bool = False):
    training.set_seed(seed)
    model = _model(ds, any_length=any_length)
    result = fit(model, ds.subset("train"), ds.subset("valid"), MODALITIES, config, verbose=False)
    return model, result


def _numpy_loss(probs, labels, mask) -> float:
    p = np.take_along_axis(probs, np.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    return float(-np.log(p[mask]).mean())


def test_fixture_has_padding_and_unscored_utterances(ds):
    assert (~ds.present).any() and (ds.present & ~ds.mask).any()


@pytest.mark.parametrize("masking", [False, True])
def test_loss_is_mean_cross_entropy_over_scored_utterances(ds, masking):
    train = ds.subset("train")
    training.set_seed(0)
    model = _model(ds, masking)
    model.compile(loss=make_loss(TrainConfig()))
    x = model_inputs(model, train, MODALITIES)
    y, w = targets(train)
    probs = model.predict(x, verbose=0)
    want = _numpy_loss(probs, train.labels, train.mask)
    assert float(make_loss(TrainConfig())(y, probs, sample_weight=w)) == pytest.approx(want, rel=1e-5)
    # what Keras trains on (a single batch: model.evaluate reports exactly the batch loss)
    assert model.evaluate(x, y, sample_weight=w, batch_size=len(train), verbose=0) == pytest.approx(want, rel=1e-5)

    # garbage features at padding and garbage labels at unscored positions change nothing
    rng = np.random.default_rng(0)
    x_bad = dict(x, text=np.where(train.present[..., None], x["text"], 1e3 * rng.standard_normal(x["text"].shape)))
    labels_bad = np.where(train.mask, train.labels, rng.integers(0, ds.num_classes, train.labels.shape))
    y_bad = np.eye(ds.num_classes, dtype=np.float32)[labels_bad]
    x_bad["text"] = x_bad["text"].astype(np.float32)
    got = model.evaluate(x_bad, y_bad, sample_weight=w, batch_size=len(train), verbose=0)
    assert got == pytest.approx(want, rel=1e-5)


def test_same_seed_same_run(ds):
    model_a, a = _train(ds)
    model_b, b = _train(ds)
    assert a.history == b.history and a.best_epoch == b.best_epoch
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert evaluate_model(model_a, ds.subset("valid"), MODALITIES) == evaluate_model(model_b, ds.subset("valid"),
                                                                                      MODALITIES)
    assert a.epochs_run == 6 and set(a.history[0]) == {"epoch", "loss", "val_loss"} | {f"val_{m}" for m in METRICS}


def test_early_stopping_restores_best_epoch(ds):
    config = TrainConfig(epochs=40, patience=3, learning_rate=0.05, batch_size=4, selection="best")
    model, result = _train(ds, config)
    scores = [h["val_macro_f1"] for h in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1 and result.best_score == max(scores)
    assert result.stopped_early and result.epochs_run == result.best_epoch + config.patience
    assert result.best_epoch < result.epochs_run  # so restoring is not a no-op
    assert evaluate_model(model, ds.subset("valid"), MODALITIES)["macro_f1"] == result.best_score
    assert result.validation["macro_f1"] == result.best_score and result.averaged_epochs == []


def test_average_selection_restores_the_mean_of_the_best_epochs_weights(ds, monkeypatch):
    """The default: the weights of the average_top best epochs (by validation macro-F1, ties to the earlier
    epoch), averaged; the validation scores reported are those of the averaged weights."""
    snapshots = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append([w.copy() for w in self.model.get_weights()])

    real_fit = keras.Model.fit

    def fit_with_spy(self, *args, callbacks=(), **kwargs):
        return real_fit(self, *args, callbacks=[Spy(), *callbacks], **kwargs)  # the spy sees each epoch first

    monkeypatch.setattr(keras.Model, "fit", fit_with_spy)
    config = TrainConfig(epochs=8, patience=8, learning_rate=0.05, batch_size=4, average_top=3)
    assert config.selection == "average"
    model, result = _train(ds, config)
    scores = [h["val_macro_f1"] for h in result.history]
    top = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:3]
    assert result.averaged_epochs == [i + 1 for i in top]
    for got, *kept in zip(model.get_weights(), *(snapshots[i] for i in top)):
        np.testing.assert_allclose(got, np.mean(kept, axis=0), rtol=1e-5, atol=1e-6)
    assert result.validation == pytest.approx(
        {m: v for m, v in evaluate_model(model, ds.subset("valid"), MODALITIES).items() if m in METRICS})


def test_fit_sees_train_and_valid_only(ds, monkeypatch):
    fed, predicted = [], []
    original_fit, original_predict = keras.Model.fit, keras.Model.predict_on_batch

    def fit_spy(self, x, *args, **kwargs):
        fed.append(x.take(kwargs["steps_per_epoch"]))  # the dataset is endless: one epoch is steps_per_epoch batches
        return original_fit(self, x, *args, **kwargs)

    def predict_spy(self, x, *args, **kwargs):
        predicted.append(x["text"][:, 0].copy())  # each dialogue's first utterance identifies it
        return original_predict(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", fit_spy)
    monkeypatch.setattr(keras.Model, "predict_on_batch", predict_spy)
    _train(ds, TrainConfig(epochs=2, batch_size=4))
    train, valid = ds.subset("train"), ds.subset("valid")
    assert len(fed) == 1
    seen = np.concatenate([x["text"][:, 0] for x, _, _ in fed[0].as_numpy_iterator()])  # one epoch's batches
    assert sorted(r.tobytes() for r in seen) == sorted(r.tobytes() for r in train.features["text"][:, 0])
    firsts = np.concatenate(predicted)  # two epochs of validation predictions, the averaged weights', nothing else
    assert len(firsts) == 3 * len(valid)
    assert {r.tobytes() for r in firsts} == {r.tobytes() for r in valid.features["text"][:, 0]}


def test_fit_refuses_test_dialogues(ds):
    model = _model(ds)
    with pytest.raises(ValueError, match="test"):
        fit(model, ds, ds.subset("valid"), MODALITIES, FAST, verbose=False)
    with pytest.raises(ValueError, match="test"):
        fit(model, ds.subset("train"), ds.subset("test"), MODALITIES, FAST, verbose=False)


def test_balanced_class_weights(ds):
    train = ds.subset("train")
    counts = np.bincount(train.labels[train.mask], minlength=ds.num_classes)
    weights = class_weights(train)
    np.testing.assert_allclose(weights, counts.sum() / (ds.num_classes * counts))
    _, w = targets(train, weights)
    np.testing.assert_allclose(w[train.mask], weights[train.labels[train.mask]], rtol=1e-6)
    assert (w[~train.mask] == 0).all()

    assert FAST.class_weight == "auto" and FAST.resolved().class_weight == "balanced"  # the default, for macro-F1
    _, plain = _train(ds, dataclasses.replace(FAST, class_weight="none"))
    _, balanced = _train(ds, FAST)
    assert balanced.class_weights == pytest.approx(weights.tolist())
    assert [h["loss"] for h in balanced.history] != [h["loss"] for h in plain.history]


def test_train_epochs_trains_without_selection(ds):
    training.set_seed(0)
    model = _model(ds)
    before = [w.copy() for w in model.get_weights()]
    train_epochs(model, ds.subset("train"), MODALITIES, FAST, epochs=1)
    assert model.compiled and not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    with pytest.raises(ValueError, match="test"):
        train_epochs(model, ds, MODALITIES, FAST, epochs=1)


def test_config_is_validated():
    with pytest.raises(ValueError, match=r"class_weight must be one of \('auto', 'none', 'balanced'\)"):
        TrainConfig(class_weight="inverse")
    with pytest.raises(ValueError, match="monitor must be one of"):
        TrainConfig(monitor="val_loss")
    with pytest.raises(ValueError, match="selection must be one of"):
        TrainConfig(selection="last")
    with pytest.raises(ValueError, match="weight_decay must be >= 0, got -0.1"):
        TrainConfig(weight_decay=-0.1)
    assert not TrainConfig(monitor="loss").higher_is_better and TrainConfig().higher_is_better


def test_weight_decay_is_adams_decoupled_decay_and_off_by_default(ds):
    from model_utils.architectures import build_model
    from model_utils.training import compile_model

    model = build_model("text_bilstm", dims=ds.dims, modalities=("text",), num_classes=ds.num_classes, max_len=None)
    compile_model(model, TrainConfig())
    assert model.optimizer.weight_decay is None
    compile_model(model, TrainConfig(weight_decay=0.05))
    assert model.optimizer.weight_decay == 0.05
    kernel = model.trainable_variables[0]
    before = np.array(kernel)
    model.optimizer.apply_gradients([(np.zeros_like(before), kernel)])  # no gradient: only the decay moves it
    np.testing.assert_allclose(np.array(kernel), before * (1 - 0.05 * 1e-3), rtol=1e-6)


def test_length_trimmed_batches_predict_exactly_what_full_width_batches_do(ds):
    from model_utils.architectures import build_model
    from model_utils.training import LengthBatches, predict, trims

    kwargs = dict(dims=ds.dims, modalities=("text",), num_classes=ds.num_classes)
    training.set_seed(0)
    free = build_model("text_bilstm", max_len=None, **kwargs)
    fixed = build_model("text_bilstm", max_len=ds.max_len, **kwargs)
    fixed.set_weights(free.get_weights())
    assert trims(free) and not trims(fixed)
    a, b = predict(free, ds, ("text",), batch_size=3), predict(fixed, ds, ("text",), batch_size=3)
    np.testing.assert_allclose(a[ds.mask], b[ds.mask], atol=1e-5)

    batches = LengthBatches(ds.model_inputs(["text"]), ds.lengths, 3, shuffle=True)
    assert sorted(np.concatenate(batches.batches).tolist()) == list(range(len(ds)))
    for i, rows in enumerate(batches.batches):
        (x,) = batches[i]
        assert ds.lengths[rows].max() <= x["text"].shape[1] <= ds.max_len


def test_fit_accepts_any_batch_length_whatever_the_first_batches_are(ds):
    """Keras infers a dataset's signature from its first two batches; when both had the same trimmed length, a
    later batch of another length crashed ``fit``. One dialogue per batch makes such orders common."""
    config = dataclasses.replace(FAST, batch_size=1, epochs=2)
    train = ds.subset("train")
    widths = []
    for seed in range(4):
        training.set_seed(seed)
        batches, _ = training._training_batches(_model(ds, any_length=True), train, MODALITIES, config)
        widths.append([batches.width(rows) for rows in batches.batches])
        _train(ds, config, seed=seed, any_length=True)  # must not raise
    assert any(w[0] == w[1] and len(set(w)) > 1 for w in widths), widths  # the case that used to crash occurs


def test_training_batches_are_reshuffled_every_epoch(ds):
    import tensorflow as tf

    from model_utils.training import LengthBatches

    np.random.seed(0)
    batches = LengthBatches(ds.model_inputs(["text"]), ds.lengths, 1, shuffle=True)
    dataset = batches.as_dataset()
    stream = [x["text"][0, 0].tobytes() for (x,) in dataset.take(3 * len(ds)).as_numpy_iterator()]
    orders = [stream[i * len(ds):(i + 1) * len(ds)] for i in range(3)]  # one pass per epoch, endlessly
    assert all(sorted(o) == sorted(set(orders[0])) for o in orders)  # every dialogue, once per pass
    assert orders[0] != orders[1] != orders[2]
    assert int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY)


def test_the_training_stream_runs_in_the_calling_thread(ds):
    """No autotuning and no injected prefetch: with them, ending ``fit`` waited for a background thread already
    making the next batch (0.4–0.9 s per run with two processes on two cores, up to a minute in ``make reproduce``)."""
    from model_utils.training import LengthBatches

    options = LengthBatches(ds.model_inputs(["text"]), ds.lengths, 4, shuffle=True).as_dataset().options()
    assert options.autotune.enabled is False
    assert options.experimental_optimization.inject_prefetch is False


def test_validation_loss_is_finite_when_batches_are_trimmed_and_selects_on_loss(ds):
    """``predict`` leaves zero rows past each batch's trimmed length; the validation loss must never read them (it
    was NaN on every split whose longest dialogue is shorter than T, so monitor='loss' never found a best epoch)."""
    valid = ds.subset("valid")
    assert -(-valid.lengths.min() // 8) * 8 < ds.max_len  # one dialogue per batch: zero rows past its length
    config = dataclasses.replace(FAST, monitor="loss", epochs=4, patience=4, batch_size=1)
    model, result = _train(ds, config, any_length=True)
    losses = [h["val_loss"] for h in result.history]
    assert np.isfinite(losses).all()
    assert result.best_epoch == 1 + int(np.argmin(losses)) and result.best_score == pytest.approx(min(losses))
    probs = training.predict(model, valid, MODALITIES)
    assert metrics.cross_entropy(probs, valid.labels, valid.mask) == pytest.approx(
        _numpy_loss(probs, valid.labels, valid.mask), rel=1e-6)


@pytest.mark.parametrize("any_length", [False, True], ids=["full-width", "trimmed"])
def test_predict_zeroes_every_padding_row_as_its_docstring_says(ds, any_length):
    """Padding rows are zero whatever the model outputs there: a full-width model's softmax at padding, or a
    trimmed batch's rows between a dialogue's end and the batch's width; every real utterance's row is a softmax."""
    training.set_seed(0)
    probs = training.predict(_model(ds, any_length=any_length), ds, MODALITIES, batch_size=4)
    assert probs.shape == ds.labels.shape + (ds.num_classes,) and probs.dtype == np.float32
    assert (probs[~ds.present] == 0).all()
    np.testing.assert_allclose(probs[ds.present].sum(-1), 1, atol=1e-5)


def test_a_diverged_run_stops_and_non_finite_values_are_written_as_strict_json(ds, tmp_path):
    """A training run whose loss becomes NaN (here: NaN weights) stops with a clear error at the end of that epoch;
    any non-finite value that is written (a history, a metric) is null in strict JSON."""
    import json

    from data_utils.fileio import write_json
    from model_utils.training import TrainingDivergedError

    training.set_seed(0)
    text = keras.Input((None, ds.dims["text"]), name="text")
    nan = keras.layers.Dense(ds.num_classes, activation="softmax", kernel_initializer=keras.initializers.Constant(
        np.nan))(text)
    with pytest.raises(TrainingDivergedError, match="the training loss became nan in epoch 1: training diverged"):
        fit(keras.Model([text], nan), ds.subset("train"), ds.subset("valid"), MODALITIES,
            dataclasses.replace(FAST, epochs=2), verbose=False)
    history = [{"epoch": 1, "loss": float("nan"), "val_loss": float("inf")}, {"epoch": 2, "loss": 1.0}]
    path = write_json(tmp_path / "result.json", {"history": history, "inf": -np.inf})

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    written = json.loads(path.read_text(), parse_constant=refuse)
    assert written["history"][0]["loss"] is None and written["history"][0]["val_loss"] is None
    assert written["inf"] is None and written["history"][1]["epoch"] == 2
