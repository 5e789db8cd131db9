"""Training and evaluation of sequence-labelling models under the suite's protocol.

The upstream study (docs/upstream.md §2.0, §5) trained with no seeds, a pad class, a loss divided by every padded
position for some models, and judged models on the test set. Here instead:

- the output is a softmax over the scheme's real classes; padding and unscored utterances get sample weight 0,
  and the loss is the mean cross-entropy over the scored utterances of a batch (``mean_with_sample_weight``);
- model selection (early stopping, then the best epoch's weights or the mean of the best epochs' weights) uses a
  held-out *validation* split, scored with :mod:`model_utils.metrics` at the end of every epoch
  (:class:`~model_utils.config.TrainConfig` says which score and which rule);
- :func:`fit` takes the train and validation splits only and refuses any dialogue of the test split;
- :func:`set_seed` makes a run repeatable.
"""
from __future__ import annotations

import collections
import heapq
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Hashable, Iterable, Sequence

import keras
import numpy as np

from data_utils.dataset import ERCDataset

from . import metrics
from .batches import LengthBatches, trims  # noqa: F401 (LengthBatches: imported from here too)
from .config import TrainConfig

__all__ = ["TrainConfig", "TrainResult", "LengthBatches", "class_weights", "compile_model", "evaluate_model", "fit",
           "make_loss", "model_inputs", "predict", "set_seed", "targets", "train_epochs"]

# Batches of different lengths retrace the step function a few times by design; TF's warning about it is noise.
logging.getLogger("tensorflow").setLevel(logging.ERROR)


def set_seed(seed: int) -> None:
    """Seed Python, numpy and the backend, and make TensorFlow ops deterministic (same seed, same numbers)."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.experimental.enable_op_determinism()
        except (AttributeError, RuntimeError):  # older TF, or already initialised: seeding still applies
            pass


@dataclass
class TrainResult:
    # Per epoch: epoch; loss (Keras' running mean of the training batch losses, class-weighted if configured);
    # val_loss (metrics.cross_entropy over scored validation utterances: never class-weighted or smoothed);
    # val_<m> for m in METRICS.
    history: list[dict]
    best_epoch: int  # 1-based; the best epoch by the monitored validation score
    best_score: float  # validation <monitor> at best_epoch
    monitor: str
    epochs_run: int
    stopped_early: bool
    seconds: float
    averaged_epochs: list[int] = field(default_factory=list)  # epochs whose weights were averaged ('average')
    # Wall seconds per epoch: the training steps (the first epoch's include tracing the step function), and the
    # validation scoring after it (its first includes tracing the prediction function).
    step_seconds: list[float] = field(default_factory=list)
    validation_seconds: list[float] = field(default_factory=list)
    validation: dict = field(default_factory=dict)  # validation metrics of the weights the model ends with
    class_weights: list[float] | None = None
    config: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ data

def class_weights(ds: ERCDataset) -> np.ndarray:
    """'Balanced' weights n / (C * n_c) over the scored utterances of ``ds`` (0 for a class that never occurs)."""
    counts = np.bincount(ds.labels[ds.mask], minlength=ds.num_classes).astype(np.float64)
    n = counts.sum()
    return np.divide(n, ds.num_classes * counts, out=np.zeros_like(counts), where=counts > 0)


def targets(ds: ERCDataset, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-hot targets (N, T, C) and sample weights (N, T): the mask, times the class weight if given.

    Unscored positions get an all-zero target and weight 0, so they never reach the loss.
    """
    onehot = np.eye(ds.num_classes, dtype=np.float32)[np.maximum(ds.labels, 0)] * ds.mask[..., None]
    weight = ds.mask.astype(np.float32)
    if weights is not None:
        weight = weight * np.asarray(weights, np.float32)[np.maximum(ds.labels, 0)]
    return onehot, weight


def input_names(model: keras.Model) -> list[str] | None:
    """The names of the inputs a model declares (None for a subclassed model that declares none)."""
    try:
        return [t.name for t in keras.tree.flatten(model.inputs)]
    except (AttributeError, ValueError):
        return None


def model_inputs(model: keras.Model, ds: ERCDataset, modalities: Iterable[str] | None = None
                 ) -> dict[str, np.ndarray]:
    """The inputs ``model`` declares, by name, from ``ds`` (:meth:`ERCDataset.model_inputs`): its modalities
    (``modalities``, default: those among its input names), ``present`` and the speaker input it takes, if any."""
    names = input_names(model)
    if modalities is None:
        modalities = [m for m in ds.modalities if names is None or m in names]
    speaker = next((n for n in ("party", "speaker") if names is not None and n in names), None)
    available = ds.model_inputs(modalities, speaker=speaker)
    if names is None:
        return available
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"the model expects inputs {missing} that {ds.source} with modalities "
                         f"{list(modalities)} does not provide (it has {sorted(available)})")
    return {n: available[n] for n in names}


def make_loss(config: TrainConfig) -> keras.losses.Loss:
    """Cross-entropy over real classes, averaged over the sample weight (= scored utterances)."""
    return keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing,
                                                reduction="mean_with_sample_weight")


def compile_model(model: keras.Model, config: TrainConfig) -> None:
    """Compile with Adam (upstream's defaults unless ``config`` says otherwise) and the masked loss."""
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=config.beta_1, beta_2=config.beta_2,
                                        epsilon=config.epsilon, clipnorm=config.clipnorm,
                                        weight_decay=config.weight_decay or None),
        loss=make_loss(config),
    )


def _training_batches(model: keras.Model, train: ERCDataset, modalities: tuple[str, ...], config: TrainConfig):
    weights = class_weights(train) if config.class_weight == "balanced" else None
    y, w = targets(train, weights)
    batches = LengthBatches(model_inputs(model, train, modalities), train.lengths, config.batch_size, targets=y,
                            sample_weight=w, shuffle=True, trim=trims(model))
    return batches, weights


def _check_no_test(ds: ERCDataset, role: str) -> None:
    leaked = set(ds.dialogue_ids) & set(ds.splits.get("test", ()))
    if leaked:
        raise ValueError(f"got {len(leaked)} test dialogue(s) as {role} data; pass ds.subset('train') and "
                         f"ds.subset('valid') (the test split is for the final evaluation only)")


# ------------------------------------------------------------------------------------------------ training

class TrainingDivergedError(ValueError):
    """The training loss became NaN or infinite; training stops at the end of that epoch."""


def check_finite(model: keras.Model, probabilities: np.ndarray | None = None) -> None:
    """Raise :class:`TrainingDivergedError` if a weight of ``model`` (or a value of ``probabilities``) is NaN or
    infinite: such a model is never saved or scored as a result."""
    bad = [w.path for w in model.weights if not np.isfinite(keras.ops.convert_to_numpy(w)).all()]
    if bad:
        raise TrainingDivergedError(f"the trained model has non-finite weights ({', '.join(bad[:3])}"
                                    f"{' …' if len(bad) > 3 else ''}): training diverged; it is neither saved nor "
                                    "scored. Lower the learning rate, or check the optimizer settings (train.*)")
    if probabilities is not None and not np.isfinite(probabilities).all():
        raise TrainingDivergedError("the trained model predicts non-finite probabilities: training diverged; it is "
                                    "neither saved nor scored")


class _Selection(keras.callbacks.Callback):
    """Scores the validation split after every epoch, keeps the weights of the ``average_top`` best epochs, stops
    after ``patience`` epochs without a better score, and ends with the best epoch's weights ('best') or their mean
    ('average')."""

    def __init__(self, model: keras.Model, valid: ERCDataset, modalities: tuple[str, ...], config: TrainConfig,
                 verbose: bool):
        super().__init__()
        self.valid, self.modalities, self.config, self.verbose = valid, modalities, config, verbose
        self.history: list[dict] = []
        self.best_score, self.best_epoch = -np.inf, 0
        keep = config.average_top if config.selection == "average" else 1
        self._keep = keep
        self._kept: list[tuple[float, int, list[np.ndarray]]] = []  # min-heap of (score, -epoch, weights)
        self.averaged_epochs: list[int] = []
        self.step_seconds: list[float] = []
        self.validation_seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start = time.perf_counter()

    def score(self, row: dict) -> float:
        """The monitored validation score of an epoch's row, oriented so that higher is better."""
        value = row[f"val_{self.config.monitor}"]
        return value if self.config.higher_is_better else -value

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not np.isfinite(loss):
            raise TrainingDivergedError(
                f"the training loss became {loss} in epoch {epoch + 1}: training diverged. Check the features for "
                f"huge values, or lower the learning rate (--set train.learning_rate=...; it is "
                f"{self.config.learning_rate})")
        validation_start = time.perf_counter()
        self.step_seconds.append(validation_start - self._epoch_start)
        probs = predict(self.model, self.valid, self.modalities, self.config.batch_size)
        scores = metrics.evaluate(self.valid.labels, metrics.predict_classes(probs), self.valid.mask,
                                  self.valid.class_names)
        row = {"epoch": epoch + 1, "loss": float((logs or {}).get("loss", np.nan)),
               "val_loss": metrics.cross_entropy(probs, self.valid.labels, self.valid.mask)}
        row.update({f"val_{m}": scores[m] for m in metrics.METRICS})
        self.history.append(row)
        if logs is not None:  # for the callbacks after this one (a TensorBoard's): Keras passes one dict along
            logs.update({k: v for k, v in row.items() if k.startswith("val_")})
        self.validation_seconds.append(time.perf_counter() - validation_start)

        score = self.score(row)
        entry = (score, -(epoch + 1))  # ties: the earlier epoch ranks higher
        if len(self._kept) < self._keep or entry > self._kept[0][:2]:
            item = (*entry, self.model.get_weights())
            (heapq.heappush if len(self._kept) < self._keep else heapq.heapreplace)(self._kept, item)
        if score > self.best_score:  # strict: ties keep the earlier epoch
            self.best_score, self.best_epoch = score, epoch + 1
        elif epoch + 1 - self.best_epoch >= self.config.patience:
            self.model.stop_training = True
        if self.verbose:
            mark = " *" if self.best_epoch == epoch + 1 else ""
            shown = "  ".join(f"{m} {row['val_' + m]:.4f}" for m in metrics.METRICS)
            print(f"epoch {epoch + 1:3d}/{self.config.epochs}  train loss {row['loss']:.4f} | "
                  f"valid loss {row['val_loss']:.4f}  {shown}{mark}", file=sys.stderr, flush=True)

    def on_train_end(self, logs: dict | None = None) -> None:
        if not self._kept:
            return
        kept = sorted(self._kept, reverse=True)
        self.averaged_epochs = [-e for _, e, _ in kept] if self.config.selection == "average" else []
        weights = [w for _, _, w in kept]
        if len(weights) == 1:
            self.model.set_weights(weights[0])
        else:
            self.model.set_weights([np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*weights)])


def fit(model: keras.Model, train: ERCDataset, valid: ERCDataset, modalities: Iterable[str],
        config: TrainConfig = TrainConfig(), *, verbose: bool | int = True, compile: bool = True,
        callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Train ``model`` on ``train``, select on ``valid``; the model ends with the selected weights (the best epoch's,
    or the mean of the best epochs' with ``config.selection='average'``).

    ``model`` maps the inputs it declares (modalities, ``present``, ``speaker``) to (N, T, C) probabilities.
    It is (re)compiled here with Adam and the masked loss, unless ``compile=False`` (a model from
    :meth:`TracedModels.model`, compiled for ``config`` already). Call :func:`set_seed` before building it.
    ``verbose`` prints one line per epoch (train loss, validation loss and metrics, ``*`` at a new best).
    ``callbacks`` (e.g. a ``keras.callbacks.TensorBoard``) run after the selection's each epoch and find in Keras'
    epoch logs ``loss`` and the validation row: ``val_loss`` and ``val_<metric>`` for every metric of
    :data:`~model_utils.metrics.METRICS`; they must not change the model (the numbers would change with them).
    """
    config = config.resolved()  # 'auto' settings, for a config that comes without its run's metric
    _check_no_test(train, "training")
    _check_no_test(valid, "validation")
    if set(train.dialogue_ids) & set(valid.dialogue_ids):
        raise ValueError("training and validation dialogues overlap")
    if not train.mask.any() or not valid.mask.any():
        raise ValueError("training and validation splits both need scored utterances")
    modalities = tuple(modalities)

    if compile:
        compile_model(model, config)
    batches, weights = _training_batches(model, train, modalities, config)
    selection = _Selection(model, valid, modalities, config, verbose)
    start = time.perf_counter()
    _fit_passes(model, batches, config.epochs, [selection, *callbacks])
    seconds = time.perf_counter() - start
    check_finite(model)
    epochs_run = len(selection.history)
    if selection.averaged_epochs:  # averaged weights: score them once more
        final = evaluate_model(model, valid, modalities, config.batch_size)
    else:  # the best epoch's weights, already scored
        final = {m: selection.history[selection.best_epoch - 1][f"val_{m}"] for m in metrics.METRICS}
    return TrainResult(
        history=selection.history,
        best_epoch=selection.best_epoch,
        best_score=float(selection.best_score if config.higher_is_better else -selection.best_score),
        monitor=config.monitor,
        epochs_run=epochs_run,
        stopped_early=epochs_run < config.epochs,
        seconds=seconds,
        averaged_epochs=selection.averaged_epochs,
        step_seconds=selection.step_seconds,
        validation_seconds=selection.validation_seconds,
        validation={m: final[m] for m in metrics.METRICS},
        class_weights=None if weights is None else weights.tolist(),
        config=asdict(config),
    )


def train_epochs(model: keras.Model, train: ERCDataset, modalities: Iterable[str], config: TrainConfig,
                 epochs: int) -> list[float]:
    """``epochs`` plain epochs on ``train``: no validation, no selection; returns each epoch's wall seconds.
    For benchmarks (``mser bench``) only.

    Compiles the model first unless it already is (e.g. by :func:`fit`, whose optimizer state is then kept).
    """
    config = config.resolved()
    _check_no_test(train, "training")
    if not model.compiled:
        compile_model(model, config)
    batches, _ = _training_batches(model, train, tuple(modalities), config)
    timer = _EpochTimer()
    _fit_passes(model, batches, epochs, [timer])
    return timer.seconds


def _fit_passes(model: keras.Model, batches: LengthBatches, epochs: int,
                callbacks: list[keras.callbacks.Callback]) -> None:
    """``model.fit`` over ``epochs`` passes of ``batches`` (one epoch is one pass of the endless stream), with
    ``callbacks`` in this order."""
    import tensorflow as tf

    try:
        model.fit(batches.as_dataset(), steps_per_epoch=len(batches), epochs=epochs, callbacks=list(callbacks),
                  shuffle=False, verbose=0)
    except tf.errors.UnimplementedError as error:
        raise determinism_error(error) from error


class DeterminismUnavailableError(ValueError):
    """An op has no deterministic kernel on this device (TensorFlow's op determinism is on in every run)."""


def determinism_error(error: Exception) -> Exception:
    """TensorFlow's error for an op without a deterministic kernel, as a one-line :class:`DeterminismUnavailableError`
    that names the op and the choices; any other error unchanged."""
    message = str(getattr(error, "message", error))
    if "determinis" not in message.lower():
        return error
    op = getattr(error, "op", None)
    where = f"op {op.name!r} ({op.type})" if op is not None else "an op"
    first = " ".join(message.split())[:300]
    return DeterminismUnavailableError(
        f"{where} has no deterministic kernel on this device, and every run keeps TensorFlow's op determinism on "
        f"({first}). Choose: train on the CPU (CUDA_VISIBLE_DEVICES= …; the same numbers on every machine), or an "
        f"architecture without that op")


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


# ------------------------------------------------------------------------------------------------ traced models

class TracedModels:
    """Compiled models kept in this process, so that the next seed of the same experiment reuses the step
    functions TensorFlow traced for the last one (5–45 s per seed here) instead of tracing a new model's.

    :meth:`model` builds a fresh model under the caller's seed, as a run would, and, when a model of the same
    ``key`` was traced before, copies the fresh model's initial state into it (weights, and the states of its
    random-number generators, e.g. dropout's) and resets its optimizer (step 0, zero moments): the same numbers,
    bit for bit, as training the fresh model (``tests/test_training.py`` checks it). Building is cheap; tracing is
    what is saved. ``size`` models are kept, the least recently used dropped.
    """

    def __init__(self, size: int = 2):
        self.size = size
        self._models: collections.OrderedDict[Hashable, keras.Model] = collections.OrderedDict()
        self.reused = 0  # how many models were reinitialised rather than compiled anew (for profiles and tests)

    def model(self, key: Hashable, build: Callable[[], keras.Model], config: TrainConfig) -> keras.Model:
        """A compiled model with the initial state ``build()`` gives under the current seed. ``key`` must identify
        everything that shapes the traced graph beyond the variables: the builder and its hyperparameters, the input
        widths and classes, and ``config`` (the optimizer and the loss are part of the graph)."""
        fresh = build()
        cached = self._models.pop(key, None)
        if cached is not None and _same_variables(cached, fresh):
            _reinitialise(cached, fresh)
            self._models[key] = cached
            self.reused += 1
            return cached
        compile_model(fresh, config)
        self._models[key] = fresh
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return fresh

    def clear(self) -> None:
        self._models.clear()


def _same_variables(a: keras.Model, b: keras.Model) -> bool:
    return [(v.path, tuple(v.shape), str(v.dtype)) for v in a.variables] == \
        [(v.path, tuple(v.shape), str(v.dtype)) for v in b.variables]


def _reinitialise(model: keras.Model, fresh: keras.Model) -> None:
    """``model`` takes ``fresh``'s initial state: every variable (weights and generator states), and an optimizer
    back at step 0 with zero moments (its learning rate is the config's, which the key fixes)."""
    for target, source in zip(model.variables, fresh.variables):
        target.assign(source.value)
    for v in model.optimizer.variables:
        if not v.path.endswith("learning_rate"):
            v.assign(keras.ops.zeros(v.shape, v.dtype))


# ------------------------------------------------------------------------------------------------ inference

def predict(model: keras.Model, ds: ERCDataset, modalities: Iterable[str], batch_size: int = 32) -> np.ndarray:
    """The model's class probabilities for every dialogue of ``ds``: (N, T, C) float32, T = ``ds.max_len``.

    Rows of real utterances (``ds.present``) hold the model's softmax, whether scored or not; rows at padding are
    zero, whatever the model outputs there or however far a batch was trimmed. Only ``ds.mask`` rows are scored.
    """
    batches = LengthBatches(model_inputs(model, ds, tuple(modalities)), ds.lengths, batch_size, trim=trims(model))
    probs = np.zeros(ds.labels.shape + (ds.num_classes,), np.float32)
    for i, rows in enumerate(batches.batches):
        (x,) = batches[i]
        out = np.asarray(model.predict_on_batch(x))
        probs[rows, : out.shape[1]] = out
    probs *= ds.present[..., None]
    return probs


def evaluate_model(model: keras.Model, ds: ERCDataset, modalities: Iterable[str], batch_size: int = 32) -> dict:
    """:func:`model_utils.metrics.evaluate` of the model's predictions over the scored utterances of ``ds``."""
    probs = predict(model, ds, modalities, batch_size)
    return metrics.evaluate(ds.labels, metrics.predict_classes(probs), ds.mask, ds.class_names)
