"""What an experiment is and how it is trained: :class:`TrainConfig`, :class:`Experiment`, and overrides.

This module imports no deep-learning backend. An :class:`Experiment` is a frozen, hashable record, checked against
the architecture registry where it is used (:func:`model_utils.registry.check_experiment`, which every runner calls
before anything is written or trained), so a typo fails at once, not after an hour of training;
:meth:`Experiment.derive` (``resolve_experiment(exp, overrides)``) derives a new one whose name records what
changed.

Override syntax, the same for ``mser run --set``, ``run_many(..., overrides=...)`` and the notebooks' parameters:
``KEY=VALUE`` where KEY is a hyperparameter of the architecture (``units=32``) or ``train.<field>`` of
:class:`TrainConfig` (``train.learning_rate=3e-4``). Values are parsed as Python literals and converted to the type
of the default they replace (``train.standardize=false`` works).
"""
from __future__ import annotations

import ast
import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Iterator, Literal, Mapping

from .metrics import METRICS

MODALITIES = ("text", "audio", "visual")  # data_utils.corpus.MODALITIES: what a corpus can hold

SELECTION_RULES = ("best", "average")
MONITORS = (*METRICS, "loss")
DEFAULT_METRIC = "macro_f1"  # the study's, and what every report leads with unless a run is judged by another
# Metrics that count every class equally: a class-balanced loss serves them; the others count every utterance.
CLASS_BALANCED_METRICS = ("macro_f1", "uar")
CLASS_WEIGHTS = ("auto", "none", "balanced")
GROUPS = ("timnet", "exploratory", "fusion", "final", "ablation", "custom")  # which notebook runs an experiment
# Cross-validation by recording session: --cv NAME -> the splits whose dialogues are folded (each held out once).
# 'sessions': leave-one-session-out over the whole corpus (IEMOCAP's usual protocol: every utterance scored once);
# 'train-sessions': the same inside the training dialogues only, the test split untouched (to choose configurations).
CV_MODES = {"sessions": ("train", "valid", "test"), "train-sessions": ("train", "valid")}
MAX_SEEDS = 10_000  # a run of more seeds is a typo (each seed trains a model), not an experiment


@dataclass(frozen=True)
class TrainConfig:
    """How every experiment is trained and selected; the defaults are the protocol's (README, "Protocol").

    Optimisation: Adam with upstream's (Keras') defaults (``weight_decay`` > 0 makes it AdamW's decoupled decay,
    off by default), ``batch_size`` dialogues per step, length-trimmed
    batches; the loss is the cross-entropy over scored utterances, with ``class_weight='balanced'`` weights
    n / (C · n_c) so that every class counts as much as it does in macro-F1 (upstream had no imbalance handling,
    flaw B21, docs/upstream.md), or unweighted (``'none'``); ``'auto'`` (the default) is balanced for a run judged by
    a metric that counts every class equally (macro-F1, UAR) and unweighted for one that counts every utterance
    (weighted-F1, accuracy). Selection: after every epoch the validation split is scored; training stops after
    ``patience`` epochs without a better ``monitor`` ('loss' is minimised, a metric maximised; ``'auto'``, the default:
    the run's metric) or at the ``epochs`` cap. :meth:`resolved` turns the two ``'auto'`` into what a run with a given
    metric trains with; runs record the resolved values.
    ``selection='average'`` restores the mean of the weights of the ``average_top`` best epochs (fewer if fewer
    ran), which is less sensitive to one lucky epoch on a small validation split; ``'best'`` restores the best
    epoch's weights. ``standardize`` standardises every modality with statistics fitted on the training dialogues
    only (upstream fed raw features, flaw B22, docs/upstream.md).

    The defaults were chosen by cross-validation inside the training dialogues of the real IEMOCAP transcripts
    (``mser run text-bilstm --cv train-sessions``, 5 seeds; the README's "Real text" section has the evidence):
    standardising, balanced weights and averaging each raised the cross-validated macro-F1 of ``text-bilstm``, and
    together they took it from 0.618 ± 0.012 (none of them) to 0.672 ± 0.003.
    """

    epochs: int = 100  # cap; early stopping on validation usually ends far sooner
    batch_size: int = 32  # dialogues per step, as upstream
    learning_rate: float = 1e-3
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    clipnorm: float | None = None  # clip each gradient to this norm (None: no clipping)
    weight_decay: float = 0.0  # decoupled weight decay of Adam (AdamW; Loshchilov & Hutter 2019); 0: none
    patience: int = 10  # epochs without a better validation score before stopping
    class_weight: Literal["auto", "none", "balanced"] = "auto"  # auto: balanced for macro-F1 and UAR, else none
    label_smoothing: float = 0.0
    monitor: str = "auto"  # 'loss' (minimised) or one of metrics.METRICS (maximised), on validation; auto: the metric
    selection: str = "average"  # the 'average' of the average_top best epochs' weights, or the 'best' epoch's
    average_top: int = 5
    standardize: bool = True  # standardise every modality on the training dialogues

    def __post_init__(self):
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            if default is None:  # clipnorm: None or a number
                ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                       and math.isfinite(value))
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, (int, float)):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and \
                    (isinstance(default, float) or float(value).is_integer())
            else:
                ok = isinstance(value, type(default))
            if not ok:
                raise ValueError(f"TrainConfig.{f.name} must be like its default {default!r}, got {value!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}")
        if self.monitor not in (*MONITORS, "auto"):
            raise ValueError(f"monitor must be one of {(*MONITORS, 'auto')}, got {self.monitor!r}")
        if self.selection not in SELECTION_RULES:
            raise ValueError(f"selection must be one of {SELECTION_RULES}, got {self.selection!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 0 or self.average_top < 1:
            raise ValueError("epochs, batch_size and average_top must be >= 1 and patience >= 0, got "
                             f"epochs={self.epochs}, batch_size={self.batch_size}, average_top={self.average_top}, "
                             f"patience={self.patience}")
        if self.learning_rate <= 0 or (self.clipnorm is not None and self.clipnorm <= 0):
            raise ValueError(f"learning_rate and clipnorm must be > 0, got {self.learning_rate}, {self.clipnorm}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        for name in ("beta_1", "beta_2"):  # Adam divides by 1 - beta**t: a beta of 1 or more trains a NaN model
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")

    @property
    def higher_is_better(self) -> bool:
        return self.monitor != "loss"

    def resolved(self, metric: str | None = None) -> "TrainConfig":
        """This config for a run judged by ``metric`` (default: the monitored metric if one is set, else
        :data:`DEFAULT_METRIC`): ``monitor='auto'`` becomes ``metric``, ``class_weight='auto'`` becomes 'balanced'
        for a metric of :data:`CLASS_BALANCED_METRICS`, else 'none'. Settings given explicitly are kept. With the
        default metric it trains exactly as the defaults did before 'auto' existed (balanced, selected on
        macro-F1)."""
        if metric is None:
            metric = self.monitor if self.monitor in METRICS else DEFAULT_METRIC
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
        return dataclasses.replace(
            self, monitor=metric if self.monitor == "auto" else self.monitor,
            class_weight=self.class_weight if self.class_weight != "auto" else
            ("balanced" if metric in CLASS_BALANCED_METRICS else "none"))


TRAIN_FIELDS = {f.name: f for f in fields(TrainConfig)}
# Settings added to TrainConfig after runs were first recorded, whose default trains exactly as before the setting
# existed: a run's config.json without one is the same configuration as one with the default (it resumes).
TRAIN_SETTINGS_ADDED = {name: TRAIN_FIELDS[name].default for name in ("weight_decay",)}


# ------------------------------------------------------------------------------------------------ parameters

class Params(Mapping[str, Any]):
    """A frozen, hashable mapping of names to JSON-like values (lists become tuples), kept in key order."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()):
        pairs = items.items() if isinstance(items, Mapping) else items
        object.__setattr__(self, "_items", dict(sorted((str(k), _frozen(v)) for k, v in pairs)))

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __eq__(self, other) -> bool:
        return isinstance(other, Mapping) and dict(self._items) == {k: _frozen(v) for k, v in other.items()}

    def __setattr__(self, name, value):
        raise AttributeError("Params is immutable")

    def __repr__(self) -> str:
        return f"Params({self._items!r})"

    def __reduce__(self):
        return Params, (tuple(self._items.items()),)

    def to_json(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in self._items.items()}


def _frozen(value):
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return Params(value)
    return value


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Params):
        return value.to_json()
    return value


# ------------------------------------------------------------------------------------------------ experiments

@dataclass(frozen=True)
class Experiment:
    """One configuration to train and evaluate: an architecture, the modalities it reads, its hyperparameters
    (``hparams``, keyword arguments of the builder) and training settings (``train``, fields of
    :class:`TrainConfig` that differ from the protocol's defaults).

    ``group`` and ``family`` say how notebooks and tables group rows (fused runs are compared with the unimodal
    runs of their family). ``overrides`` records what :meth:`derive` changed relative to ``base`` (the
    registered experiment it came from); both are part of ``name``.

    Checked where it is used, as scikit-learn checks parameters at ``fit``: creating one checks only its name and
    group; :func:`model_utils.registry.check_experiment` (called by ``resolve_experiment``, hence by every runner)
    checks that the architecture is registered, takes these modalities, that every hyperparameter is a parameter
    of its builder and every training key a field of :class:`TrainConfig` with a valid value.
    """

    name: str
    arch: str
    modalities: tuple[str, ...]
    description: str = ""
    group: str = "custom"
    family: str = "custom"
    hparams: Mapping[str, Any] = field(default_factory=Params)
    train: Mapping[str, Any] = field(default_factory=Params)
    base: str = ""  # the experiment this one was derived from by overrides ('' = itself)
    overrides: Mapping[str, Any] = field(default_factory=Params)

    def __post_init__(self):
        modalities = (self.modalities,) if isinstance(self.modalities, str) else tuple(self.modalities)
        object.__setattr__(self, "modalities", modalities)
        for name in ("hparams", "train", "overrides"):
            object.__setattr__(self, name, Params(getattr(self, name)))
        object.__setattr__(self, "base", self.base or self.name)
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"an experiment needs a non-empty name, got {self.name!r}")
        if self.group not in GROUPS:
            raise ValueError(f"experiment {self.name!r}: group must be one of {GROUPS}, got {self.group!r}")

    # -- validation --------------------------------------------------------------------------------------
    def check_train(self) -> None:
        """Raise ``ValueError`` unless the modalities are ones a corpus has and every training key is a field of
        :class:`TrainConfig` with a valid value (the registry's part: :func:`model_utils.registry.check_experiment`)."""
        where = f"experiment {self.name!r}"
        strange = [m for m in self.modalities if m not in MODALITIES]
        if strange:
            raise ValueError(f"{where}: unknown modalities {strange}; a corpus has {', '.join(MODALITIES)}")
        unknown = sorted(set(self.train) - set(TRAIN_FIELDS))
        if unknown:
            raise ValueError(f"{where}: {unknown} are not training settings; TrainConfig has "
                             f"{', '.join(TRAIN_FIELDS)}")
        try:
            self.train_config()
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    # -- derived -----------------------------------------------------------------------------------------
    @property
    def fused(self) -> bool:
        return len(self.modalities) > 1

    def train_config(self, *, metric: str | None = None, **extra) -> TrainConfig:
        """The full :class:`TrainConfig` a run judged by ``metric`` trains with: the protocol's defaults, then
        ``train``, then ``extra`` (e.g. epochs), its ``'auto'`` settings resolved (:meth:`TrainConfig.resolved`)."""
        return self.train_settings(**extra).resolved(metric)

    def train_settings(self, **extra) -> TrainConfig:
        """:meth:`train_config` before its ``'auto'`` settings are resolved: what the experiment itself says."""
        return TrainConfig(**{**self.train, **{k: v for k, v in extra.items() if v is not None}})

    def derive(self, overrides: Mapping[str, Any] | Iterable[str] | None, hparam_defaults: Mapping[str, Any]
               ) -> "Experiment":
        """A new experiment with ``overrides`` applied (``{"units": 32, "train.learning_rate": 3e-4}``, or
        ``["units=32", ...]`` as typed on the command line), given its builder's hyperparameters and their defaults
        (``hparam_defaults``; :func:`model_utils.registry.resolve_experiment` passes them). Its name gets the
        overrides appended, ``text-bilstm[train.learning_rate=0.0003,units=32]``; ``base`` stays the registered
        name.

        Raises ``ValueError`` for an unknown key (listing the valid ones) or a value of the wrong type.
        """
        parsed = parse_overrides(overrides) if overrides is not None else {}
        if not parsed:
            return self
        hparams_defaults = dict(hparam_defaults)
        hparams, train = dict(self.hparams), dict(self.train)
        for key, value in parsed.items():
            if key.startswith("train."):
                name = key[len("train."):]
                if name not in TRAIN_FIELDS:
                    raise self._unknown(key, hparams_defaults)
                train[name] = coerce(value, TrainConfig.__dataclass_fields__[name].default, key)
            elif key in hparams_defaults:
                hparams[key] = coerce(value, hparams_defaults[key], key)
            else:
                raise self._unknown(key, hparams_defaults)
        current = self.train_settings()  # as given, 'auto' included: an explicit setting is always recorded
        recorded = dict(self.overrides)
        for k in parsed:  # a value equal to what the experiment already uses changes nothing
            new = train[k[6:]] if k.startswith("train.") else hparams[k]
            old = getattr(current, k[6:]) if k.startswith("train.") else self.hparams.get(k, hparams_defaults[k])
            if new != old:
                recorded[k] = new
        if recorded == dict(self.overrides):
            return self
        label = ",".join(f"{k}={_show(v)}" for k, v in sorted(recorded.items()))
        return dataclasses.replace(self, name=f"{self.base}[{label}]", hparams=hparams, train=train,
                                   base=self.base, overrides=recorded)

    def _unknown(self, key: str, hparam_defaults: Mapping[str, Any]) -> ValueError:
        return ValueError(f"experiment {self.base!r}: unknown override key {key!r}; valid keys: "
                          f"{', '.join(override_keys(hparam_defaults))}")

    # -- records -----------------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """A JSON-ready description (what ``summary.json`` stores under ``experiment_config``)."""
        return {"name": self.name, "base": self.base, "arch": self.arch, "modalities": list(self.modalities),
                "description": self.description, "group": self.group, "family": self.family,
                "hparams": self.hparams.to_json(), "train": self.train.to_json(),
                "overrides": self.overrides.to_json()}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Experiment":
        """The experiment as it was recorded (its architecture may have been defined in a notebook that is not
        running now: nothing here asks the registry)."""
        keys = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in keys})


def override_keys(hparam_defaults: Mapping[str, Any]) -> list[str]:
    """Every override key an experiment whose builder has ``hparam_defaults`` accepts: those hyperparameters, then
    ``train.<field>`` for every :class:`TrainConfig` field."""
    return list(hparam_defaults) + [f"train.{k}" for k in TRAIN_FIELDS]


# ------------------------------------------------------------------------------------------------ overrides

def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """``{"units": 32}`` as is; ``["units=32", "train.standardize=false"]`` split at the first ``=``, values
    parsed as Python literals where they are one (else kept as strings). Raises ``ValueError`` on a malformed
    item or a key given twice."""
    if isinstance(overrides, Mapping):
        return {str(k).strip(): v for k, v in overrides.items()}
    if isinstance(overrides, str):
        overrides = [overrides]
    parsed: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form KEY=VALUE (e.g. units=32 or "
                             "train.learning_rate=3e-4)")
        if key in parsed:
            raise ValueError(f"override key {key!r} is given twice")
        parsed[key] = _literal(text.strip())
    return parsed


def _literal(text: str):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, float) and not math.isfinite(value):
        return text  # 1e400 reads as inf: keep what was typed, so a refusal quotes it
    return value


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def coerce(value, default, key: str = "value", where: str = "override"):
    """``value`` as the type of ``default`` (bool from true/false, int, float, tuple from a list); a default of
    None accepts anything. Raises ``ValueError`` naming ``key`` when it does not fit."""
    def bad() -> ValueError:
        kind = ("true or false" if isinstance(default, bool) else "a whole number" if isinstance(default, int)
                else "a finite number" if isinstance(default, float) else "a value")
        return ValueError(f"{where} {key}={value!r}: expected {kind} like the default {default!r}")

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE | _FALSE:
            return text in _TRUE
        raise bad()
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad()  # also 1e400, which Python reads as inf
        if isinstance(default, int):
            if int(value) != value:
                raise bad()
            return int(value)
        return float(value)
    if isinstance(default, (tuple, list)):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if not isinstance(value, (tuple, list)):
            raise bad()
        return tuple(value)
    if isinstance(default, str):
        return str(value)
    return value


def _show(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "(" + ",".join(_show(v) for v in value) + ")"
    return repr(value) if isinstance(value, str) and not value.replace("_", "").isalnum() else str(value)

