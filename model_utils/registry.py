"""The architecture registry: how a builder is registered, what it takes, and the one place a model is built.

``build_model(arch, dims=…, modalities=…, num_classes=…, max_len=…)`` wires the inputs every architecture shares (one
``(max_len, dims[m])`` float input per modality, ``present`` and, for speaker models, ``party`` or ``speaker``),
calls the registered builder and checks its output; :func:`build_for` builds an experiment's model for a dataset.
:func:`check_experiment` checks an :class:`~model_utils.config.Experiment` against the registry where it is used
(``resolve_experiment`` in the runner calls it), as scikit-learn checks parameters at ``fit``. The built-in builders live in
:mod:`model_utils.models` and are registered by importing :mod:`model_utils.architectures`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import keras
from keras import layers

from .layers import ApplyMask, BoolMask, ClipIndex

from . import config
from .config import Experiment, coerce

if TYPE_CHECKING:
    from data_utils.dataset import ERCDataset

__all__ = ["ARCHITECTURES", "MAX_PARTIES", "ModelInputs", "architecture_code", "build_for", "build_model",
           "check_modalities", "default_hparams", "register_architecture", "required_inputs", "speaker_rows"]


ARCHITECTURES: dict[str, Callable[..., Any]] = {}
SPEAKER_IDENTITIES = ("party", "global")
MAX_PARTIES = 4  # party rows at most; later parties of a dialogue share the last row


@dataclass(frozen=True)
class ModelInputs:
    """What a builder receives: zero-padded features per modality (in the order given), ``present`` (float),
    its bool ``mask`` and ``speaker`` (int, clipped to the embedding's rows; None unless the architecture uses it)."""

    features: dict[str, Any]
    present: Any
    mask: Any
    speaker: Any = None

    def sequence(self, name: str = "concat_features"):
        """The single-sequence input: the one modality, or all of them concatenated per utterance."""
        values = list(self.features.values())
        return values[0] if len(values) == 1 else layers.Concatenate(axis=-1, name=name)(values)


def register_architecture(name: str, *, modalities: Sequence[str] | None = None, speaker: bool = False):
    """Decorator: register ``builder(x: ModelInputs, num_classes, *, hparams...)`` as architecture ``name``.

    ``modalities``: the exact modalities it takes (None: any non-empty set). ``speaker``: it reads ``x.speaker``
    and gets ``num_speakers`` (the rows of a speaker embedding). Its keyword-only parameters are its
    hyperparameters (their defaults are listed by :func:`default_hparams`; experiments and ``--set`` override them).
    Registering a name again replaces the earlier builder (a notebook cell run twice), except a built-in one.
    """
    def decorate(builder):
        if not callable(builder):
            raise TypeError(f"register_architecture({name!r}) decorates a function, got {type(builder).__name__}")
        previous = ARCHITECTURES.get(name)
        if previous is not None and is_built_in(previous) and not is_built_in(builder):
            raise ValueError(f"architecture {name!r} is built in; register yours under another name")
        builder.fixed_modalities = None if modalities is None else tuple(modalities)
        builder.uses_speaker = bool(speaker)
        builder.architecture_name = name
        ARCHITECTURES[name] = builder
        return builder
    return decorate


BUILT_IN_PACKAGE = "model_utils.models"


def is_built_in(builder: Callable) -> bool:
    """Whether ``builder`` is one of the suite's own (defined in :mod:`model_utils.models`)."""
    return getattr(builder, "__module__", "").startswith(BUILT_IN_PACKAGE + ".")


def get_builder(arch: str | Callable) -> Callable:
    """The registered builder of ``arch`` (a name, or a builder itself); ``ValueError`` if it is not registered."""
    if callable(arch):
        if not hasattr(arch, "uses_speaker"):
            raise ValueError(f"{getattr(arch, '__name__', arch)!r} is not a registered builder; decorate it with "
                             "@register_architecture('name')")
        return arch
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}") from None


def _name(arch: str | Callable) -> str:
    return arch if isinstance(arch, str) else arch.architecture_name


def check_modalities(arch: str | Callable, modalities: Sequence[str]) -> tuple[str, ...]:
    """``modalities`` as a tuple if ``arch`` takes them; ``ValueError`` otherwise."""
    modalities = (modalities,) if isinstance(modalities, str) else tuple(modalities)
    if not modalities or len(set(modalities)) != len(modalities):
        raise ValueError(f"{_name(arch)}: modalities must be distinct and non-empty, got {modalities}")
    fixed = get_builder(arch).fixed_modalities
    if fixed is not None and set(modalities) != set(fixed):
        raise ValueError(f"{_name(arch)} takes exactly the modalities {fixed}, got {modalities}")
    return modalities


def required_inputs(arch: str | Callable, modalities: Sequence[str], speaker_identity: str = "party"
                    ) -> tuple[str, ...]:
    """The input names ``build_model(arch, modalities=…)`` expects, e.g. ``('text', 'present')`` or
    ``('text', 'present', 'party')``."""
    modalities = check_modalities(arch, modalities)
    speaker = (_speaker_input(speaker_identity),) if get_builder(arch).uses_speaker else ()
    return (*modalities, "present") + speaker


def default_hparams(arch: str | Callable) -> dict[str, Any]:
    """The hyperparameters of ``arch`` with their defaults (the upstream values). Architectures that use the speaker
    also take ``speaker_identity`` ('party', the default, or 'global')."""
    builder = get_builder(arch)
    params = inspect.signature(builder).parameters.values()
    hparams = {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY and p.name != "num_speakers"}
    if builder.uses_speaker:
        hparams["speaker_identity"] = "party"
    return hparams


def _speaker_input(identity: str) -> str:
    if identity not in SPEAKER_IDENTITIES:
        raise ValueError(f"speaker_identity must be one of {SPEAKER_IDENTITIES}, got {identity!r}")
    return "party" if identity == "party" else "speaker"


def build_model(arch: str | Callable, *, dims: Mapping[str, int], modalities: Sequence[str], num_classes: int,
                max_len: int | None, num_speakers: int = 2, **hparams) -> keras.Model:
    """Build architecture ``arch`` (a key of ``ARCHITECTURES``, or a registered builder); ``hparams`` override
    ``default_hparams(arch)``. ``num_speakers``: rows of the speaker embedding (party or speaker indices beyond it
    share the last row). ``max_len=None`` takes dialogues of any length.

    Raises ``ValueError`` for an unknown architecture or hyperparameter, modalities the architecture does not take,
    a missing width, fewer than 2 classes, or a builder whose output carries a Keras mask.
    """
    builder = get_builder(arch)
    name = _name(arch)
    modalities = check_modalities(arch, modalities)
    missing = [m for m in modalities if m not in dims]
    if missing:
        raise ValueError(f"{name}: no width given in dims for {missing}")
    known = default_hparams(arch)
    unknown = set(hparams) - set(known)
    if unknown:
        raise ValueError(f"{name}: unknown hyperparameters {sorted(unknown)}; known: {sorted(known)}")
    if num_classes < 2:
        raise ValueError(f"{name}: need at least 2 classes, got {num_classes}")

    raw = {m: keras.Input((max_len, int(dims[m])), name=m) for m in modalities}
    present = keras.Input((max_len,), name="present")
    mask = BoolMask(name="padding_mask")(present)
    features = {m: ApplyMask(name=f"{m}_zero_padding")(raw[m], mask) for m in modalities}
    inputs = {**raw, "present": present}
    extra, speaker = {}, None
    if builder.uses_speaker:
        if num_speakers < 1:
            raise ValueError(f"{name}: num_speakers must be >= 1, got {num_speakers}")
        input_name = _speaker_input(hparams.pop("speaker_identity", known["speaker_identity"]))
        inputs[input_name] = keras.Input((max_len,), dtype="int32", name=input_name)
        speaker = ClipIndex(num_speakers - 1, name=f"{input_name}_index")(inputs[input_name])
        extra["num_speakers"] = num_speakers
    outputs = builder(ModelInputs(features, present, mask, speaker), num_classes, **extra, **hparams)
    for tensor in keras.tree.flatten(outputs):
        if getattr(tensor, "_keras_mask", None) is not None:
            raise ValueError(
                f"{name}: the model's output carries a Keras mask (a layer called with mask=, or Masking, passed it "
                "on). The suite weights the loss and metrics with the dataset's own mask, and a Keras mask would "
                "change how Keras normalises the loss; drop it before the classifier, e.g. "
                "h = ApplyMask()(h, x.mask) after a recurrent layer called with mask=x.mask "
                "(from model_utils.layers import ApplyMask)")
    shape = tuple(getattr(outputs, "shape", ()))
    if len(shape) != 3 or shape[-1] != num_classes:
        raise ValueError(f"{name}: the builder must return per-utterance probabilities of shape (batch, dialogue "
                         f"length, num_classes={num_classes}), got {shape}")
    return keras.Model(inputs, outputs, name=name)


def architecture_code(arch: str | Callable) -> str:
    """A short SHA-256 of the builder's source (of its bytecode where the source cannot be read): a run records it,
    so that resuming a run after the architecture's code changed is refused."""
    import hashlib

    builder = get_builder(arch)
    try:
        text = inspect.getsource(builder).encode()
    except (OSError, TypeError):
        code = builder.__code__
        text = code.co_code + repr(code.co_consts).encode() + repr(code.co_names).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def speaker_rows(ds: "ERCDataset", speaker_identity: str = "party") -> int:
    """Rows of the speaker embedding for a model trained on ``ds``: for 'party', the most parties any of its
    dialogues has, capped at :data:`MAX_PARTIES`; for 'global', its number of speaker names."""
    if _speaker_input(speaker_identity) == "party":
        return max(1, min(MAX_PARTIES, ds.num_parties))
    return max(1, len(ds.speaker_names))


def build_for(experiment: Experiment, train: "ERCDataset", *, num_classes: int | None = None,
              max_len: int | None = None) -> keras.Model:
    """``experiment``'s model for data shaped like ``train`` (its widths, classes and speakers): the one place an
    experiment becomes a model. ``num_classes`` overrides the scheme's (the archive's pad-class demo adds one)."""
    hparams = dict(experiment.hparams)
    builder = get_builder(experiment.arch)
    rows = 2
    if builder.uses_speaker:
        rows = speaker_rows(train, hparams.get("speaker_identity", "party"))
    return build_model(experiment.arch, dims=train.dims, modalities=experiment.modalities,
                       num_classes=num_classes or train.num_classes, max_len=max_len, num_speakers=rows, **hparams)



# ------------------------------------------------------------------------------------------------ experiments

def check_experiment(experiment: Experiment) -> Experiment:
    """``experiment`` itself if it fits the registry: its architecture is registered and takes its modalities,
    every hyperparameter is a parameter of the builder with a value like its default, and its training settings
    are valid (:meth:`Experiment.check_train`). Raises ``ValueError`` naming the experiment and what is valid."""
    where = f"experiment {experiment.name!r}"
    if experiment.arch not in ARCHITECTURES:
        raise ValueError(f"{where}: unknown architecture {experiment.arch!r}; registered: "
                         f"{', '.join(ARCHITECTURES)} (register your own with @register_architecture)")
    experiment.check_train()
    try:
        check_modalities(experiment.arch, experiment.modalities)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    known = default_hparams(experiment.arch)
    unknown = sorted(set(experiment.hparams) - set(known))
    if unknown:
        raise ValueError(f"{where}: {unknown} are not hyperparameters of architecture {experiment.arch!r}; its "
                         f"hyperparameters are {', '.join(known) or 'none'}")
    for key, value in experiment.hparams.items():
        coerce(value, known[key], key, where)  # raises when the value is not like the default
    return experiment


def override_keys(experiment: Experiment) -> list[str]:
    """Every override key ``experiment`` accepts: its builder's hyperparameters, then ``train.<field>``."""
    return config.override_keys(default_hparams(experiment.arch))

