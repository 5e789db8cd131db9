"""Every architecture of the upstream study (``docs/upstream.md`` §2), rebuilt with the Keras 3
functional API, plus a true decision-level late fusion.

``build_model(arch, dims=…, modalities=…, num_classes=…, max_len=…)`` returns a ``keras.Model`` that takes a dict:
one ``(max_len, dims[m])`` float input per modality (named after it), ``present`` (max_len,) float32 — 1.0 at real
utterances, 0.0 at padding (``ERCDataset.model_inputs``) — and, only for architectures that use the speaker
(``multimodal`` and ``text_context``), an int32 (max_len,) speaker input: ``party`` by default, the speaker's index
within its dialogue (first to speak = 0, as in DialogueRNN-style models), or ``speaker``, the corpus-wide speaker
index, with the hyperparameter ``speaker_identity='global'``. Indices beyond ``num_speakers - 1`` share the last
row, so cost never grows with the number of speaker names and a speaker seen only in test never meets an untrained
embedding. It returns per-utterance class probabilities (B, max_len, num_classes). Architectures that take one
sequence concatenate the modalities in the order given (upstream's 712-d "all" input is
``("audio", "visual", "text")``). ``required_inputs`` names the inputs; ``default_hparams`` lists the
hyperparameters, whose defaults are the upstream values. :func:`build_for` builds an experiment's model for a
dataset: the one place the runner, ``mser bench`` and the archive notebook build models.

Your own architecture: a function ``builder(x: ModelInputs, num_classes, *, hparam=default, ...)`` that returns the
(B, T, num_classes) probabilities, registered with ``@register_architecture("name")``; see notebook 3.

Deviations from upstream shared by every architecture (each builder's docstring lists its own):

- The padding mask is the explicit ``present`` input instead of ``Masking(0.0)``. They agree unless a real
  utterance has an all-zero feature vector (upstream would have masked it; docs/upstream.md §1.5).
- The features are zeroed at padded steps on entry (a no-op on ``ERCDataset`` arrays, which are zero-padded).
- The softmax covers the real classes only: no padding class (flaw B10, docs/upstream.md). With 4 classes the last Dense
  has ``in_dim + 1`` fewer parameters than upstream's 5-way head; ``num_classes=5`` reproduces upstream counts.
- Outputs carry no Keras mask, in every architecture (``build_model`` refuses a builder whose output does): the
  training loop weights the loss and metrics with ``ERCDataset.mask`` itself, so the loss is normalised the same
  way for every family (flaw B9, docs/upstream.md).
- Functional models instead of subclassed ones (they save to ``.keras`` and reload with identical predictions).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import keras
from keras import layers

from .layers import (
    ApplyMask, BoolMask, ClipIndex, ConvexCombination, CrossModalAttention, LogLinearPool, MaskedAttention, ModalityDropout,
    SinusoidalPositionEncoding, TimNet, TransformerBlock,
)

if TYPE_CHECKING:
    from data_utils.dataset import ERCDataset

    from .config import Experiment

__all__ = ["ARCHITECTURES", "MAX_PARTIES", "ModelInputs", "build_for", "build_model", "check_modalities",
           "default_hparams", "register_architecture", "required_inputs", "speaker_rows",
           "bilstm", "conv_stack", "self_attention", "transformer_stack", "softmax_head",
           "seed_text_branch", "seed_audio_branch", "seed_visual_branch", "transformer_audio_branch",
           "seed_fusion"]

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
        if previous is not None and previous.__module__ == __name__ and builder.__module__ != __name__:
            raise ValueError(f"architecture {name!r} is built in; register yours under another name")
        builder.fixed_modalities = None if modalities is None else tuple(modalities)
        builder.uses_speaker = bool(speaker)
        builder.architecture_name = name
        ARCHITECTURES[name] = builder
        return builder
    return decorate


def _builder(arch: str | Callable):
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
    fixed = _builder(arch).fixed_modalities
    if fixed is not None and set(modalities) != set(fixed):
        raise ValueError(f"{_name(arch)} takes exactly the modalities {fixed}, got {modalities}")
    return modalities


def required_inputs(arch: str | Callable, modalities: Sequence[str], speaker_identity: str = "party"
                    ) -> tuple[str, ...]:
    """The input names ``build_model(arch, modalities=…)`` expects, e.g. ``('text', 'present')`` or
    ``('text', 'present', 'party')``."""
    modalities = check_modalities(arch, modalities)
    speaker = (_speaker_input(speaker_identity),) if _builder(arch).uses_speaker else ()
    return (*modalities, "present") + speaker


def default_hparams(arch: str | Callable) -> dict[str, Any]:
    """The hyperparameters of ``arch`` with their defaults (the upstream values). Architectures that use the speaker
    also take ``speaker_identity`` ('party', the default, or 'global')."""
    builder = _builder(arch)
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
    builder = _builder(arch)
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

    builder = _builder(arch)
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


def build_for(experiment: "Experiment", train: "ERCDataset", *, num_classes: int | None = None,
              max_len: int | None = None) -> keras.Model:
    """``experiment``'s model for data shaped like ``train`` (its widths, classes and speakers): the one place an
    experiment becomes a model. ``num_classes`` overrides the scheme's (the archive's pad-class demo adds one)."""
    hparams = dict(experiment.hparams)
    builder = _builder(experiment.arch)
    rows = 2
    if builder.uses_speaker:
        rows = speaker_rows(train, hparams.get("speaker_identity", "party"))
    return build_model(experiment.arch, dims=train.dims, modalities=experiment.modalities,
                       num_classes=num_classes or train.num_classes, max_len=max_len, num_speakers=rows, **hparams)


# ------------------------------------------------------------------------------------------------ building blocks

def bilstm(x, mask, units: int = 64, *, name: str):
    """``Bidirectional(LSTM(units, return_sequences=True))`` over the real steps; padded outputs are 0."""
    y = layers.Bidirectional(layers.LSTM(units, return_sequences=True), name=name)(x, mask=mask)
    return ApplyMask(name=f"{name}_out")(y, mask)  # also drops the Keras mask Bidirectional tags its output with


def conv_stack(x, mask, filters: int, kernel_sizes: Sequence[int], *, name: str, activation: str = "relu"):
    """``Conv1D(filters, k, activation, 'same')`` for each k, with padded steps zeroed before every convolution, so
    a dialogue's last utterances see the same zeros as at the end of an unpadded sequence."""
    for i, kernel_size in enumerate(kernel_sizes, 1):
        x = ApplyMask(name=f"{name}_zero{i}")(x, mask)
        x = layers.Conv1D(filters, kernel_size, padding="same", activation=activation, name=f"{name}_conv{i}")(x)
    return x


def self_attention(x, mask, num_heads: int, key_dim: int, value_dim: int | None = None, *, name: str):
    """Multi-head self-attention over the real steps (output width = input width; padded outputs are 0)."""
    return MaskedAttention(num_heads, key_dim, value_dim, name=name)(x, query_mask=mask)


def transformer_stack(x, mask, *, num_blocks: int, num_heads: int, dff: int, dropout: float,
                      key_dim: int | None = None, positional: bool = False, name: str):
    """``num_blocks`` × :class:`TransformerBlock` (d_model = input width), each masking padded keys."""
    if positional:
        x = SinusoidalPositionEncoding(name=f"{name}_positions")(x)
    for i in range(1, num_blocks + 1):
        x = TransformerBlock(x.shape[-1], num_heads, dff, dropout, key_dim, name=f"{name}_block{i}")(x, mask=mask)
    return x


def softmax_head(x, num_classes: int, *, hidden: int | None = None, dropout: float | None = None,
                 name: str = "classifier"):
    """[Dropout] → [Dense(hidden, relu)] → Dense(num_classes, softmax), per utterance."""
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    if hidden:
        x = layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(x)
    return layers.Dense(num_classes, activation="softmax", name=name)(x)


# -- the §2.3 final model's branches

def seed_text_branch(x, mask, *, units: int = 64, d_model: int = 128, name: str = "text"):
    """§2.3 text branch: BiLSTM(units) → BiLSTM(units) → Dense(d_model, relu)."""
    x = bilstm(x, mask, units, name=f"{name}_bilstm1")
    x = bilstm(x, mask, units, name=f"{name}_bilstm2")
    return layers.Dense(d_model, activation="relu", name=f"{name}_dense")(x)


def seed_audio_branch(x, mask, *, d_model: int = 128, filters: int = 128, kernel_sizes: Sequence[int] = (8, 3),
                      name: str = "audio"):
    """§2.3 audio branch: Conv1D(filters, 8) → Conv1D(filters, 3) (relu, 'same', padding zeroed first) →
    Dense(d_model, relu)."""
    x = conv_stack(x, mask, filters, kernel_sizes, name=name)
    return layers.Dense(d_model, activation="relu", name=f"{name}_dense")(x)


def seed_visual_branch(x, mask, *, d_model: int = 128, filters: int = 128, kernel_sizes: Sequence[int] = (8, 3),
                       num_heads: int = 8, key_dim: int = 64, name: str = "visual"):
    """§2.3 visual branch: MHA(num_heads, key_dim) self-attention → the audio branch's convolutions → Dense."""
    x = self_attention(x, mask, num_heads, key_dim, name=f"{name}_self_attention")
    return seed_audio_branch(x, mask, d_model=d_model, filters=filters, kernel_sizes=kernel_sizes, name=name)


def transformer_audio_branch(x, mask, *, d_model: int = 128, num_blocks: int = 2, num_heads: int = 4,
                             dff: int = 2048, dropout: float = 0.1, name: str = "audio"):
    """The README's audio branch: ``num_blocks`` TransformerBlocks (d_model = audio width) → Dense(d_model, relu)."""
    x = transformer_stack(x, mask, num_blocks=num_blocks, num_heads=num_heads, dff=dff, dropout=dropout,
                          name=f"{name}_transformer")
    return layers.Dense(d_model, activation="relu", name=f"{name}_dense")(x)


def seed_fusion(text, audio, visual, mask, num_classes: int, *, d_model: int = 128, num_heads: int = 8):
    """§2.3 head: text→audio and text→visual CrossModalAttention(d_model, num_heads) (padded keys masked) →
    Concatenate([text, text→audio, text→visual]) → Dense(num_classes, softmax)."""
    to_audio = CrossModalAttention(d_model, num_heads, name="text_to_audio")(
        text, audio, query_mask=mask, context_mask=mask)
    to_visual = CrossModalAttention(d_model, num_heads, name="text_to_visual")(
        text, visual, query_mask=mask, context_mask=mask)
    fused = layers.Concatenate(axis=-1, name="fusion")([text, to_audio, to_visual])
    return softmax_head(fused, num_classes)


# ------------------------------------------------------------------------------------------------ architectures

@register_architecture("timnet")
def timnet(x: ModelInputs, num_classes: int, *, filters: int = 39, kernel_size: int = 2, num_dilations: int = 8,
           num_stacks: int = 1, dropout: float = 0.1, activation: str = "relu", level_dim: int = 6):
    """§2.1 NB1 TIM-Net sequence labeller: :class:`TimNet` (filters 39, kernel 2, dilations 1…128, dropout 0.1;
    8 levels × 39 = 312 per utterance) → ``weight_layer`` Dense(6, no bias, uniform ±0.05 init: upstream's
    WeightLayer) → Dense(num_classes, softmax).

    Deviations (fixes only): the backward stream is reversed within each dialogue's length and reversed back, so it
    is aligned with the forward one (flaw B1); padding is zeroed before every convolution and BatchNorm uses masked
    moments (upstream had no mask at all and trained on padding, flaw B4 — the loss side is the trainer's job).
    """
    h = TimNet(filters, kernel_size, num_dilations, num_stacks, dropout, activation, name="timnet")(
        x.sequence(), mask=x.mask)
    h = layers.Dense(level_dim, use_bias=False, kernel_initializer=keras.initializers.RandomUniform(-0.05, 0.05),
                     name="weight_layer")(h)
    return softmax_head(h, num_classes)


@register_architecture("rnn")
def rnn(x: ModelInputs, num_classes: int, *, num_heads: int = 4, key_dim: int = 64, value_dim: int = 64,
        units: int = 64, dropout: float = 0.5, hidden: int = 64):
    """§2.2 NB2 RNNModel: MHA(4 heads, key_dim 64, value_dim 64) self-attention → BiLSTM(64) → BiLSTM(64) →
    Dropout(0.5) → Dense(64, relu) → Dense(num_classes, softmax).

    Deviations: none beyond the shared ones. Upstream already masked the padded keys (via Masking); here padded
    query outputs are 0 instead of a uniform average over all keys (never seen by real steps either way).
    """
    h = self_attention(x.sequence(), x.mask, num_heads, key_dim, value_dim, name="self_attention")
    h = bilstm(h, x.mask, units, name="bilstm1")
    h = bilstm(h, x.mask, units, name="bilstm2")
    return softmax_head(h, num_classes, hidden=hidden, dropout=dropout)


@register_architecture("cnn")
def cnn(x: ModelInputs, num_classes: int, *, filters: int = 64, kernel_sizes: Sequence[int] = (12, 8, 4),
        hidden: int = 32):
    """§2.2 NB2 CNNModel: Conv1D(64, k12) → Conv1D(64, k8) → Conv1D(64, k4) (relu, 'same') → Dense(32, relu) →
    Dense(num_classes, softmax).

    Deviation (fix, flaw B9): the mask is applied — padded steps are zeroed before every convolution. Upstream
    discarded its Masking output; its zero-padded inputs protected only the first convolution, after which the
    padded steps held relu(bias) activations that the next kernels (width 8, 4) mixed into the last utterances.
    """
    h = conv_stack(x.sequence(), x.mask, filters, kernel_sizes, name="cnn")
    return softmax_head(h, num_classes, hidden=hidden)


@register_architecture("transformer")
def transformer(x: ModelInputs, num_classes: int, *, num_blocks: int = 2, num_heads: int = 4, dff: int = 2048,
                dropout: float = 0.1, key_dim: int | None = None, positional: bool = False):
    """§2.2 NB2 TransformerModel: 2 × TransformerBlock(d_model = input width, 4 heads, key_dim d_model // 4,
    dff 2048, dropout 0.1) → Dense(num_classes, softmax). No positional encoding and no input projection.

    Deviations (fixes, flaw B12): every block masks the padded keys (upstream: only the first block did).
    ``positional=True`` (opt-in, off by default to stay faithful) adds sinusoidal encodings of the utterance index
    to the input, since without them utterance order is invisible to the model.
    """
    h = transformer_stack(x.sequence(), x.mask, num_blocks=num_blocks, num_heads=num_heads, dff=dff,
                          dropout=dropout, key_dim=key_dim, positional=positional, name="transformer")
    return softmax_head(h, num_classes)


@register_architecture("early_fusion")
def early_fusion(x: ModelInputs, num_classes: int, *, units: int = 64, hidden: int = 64):
    """§2.2 NB2 EarlyFusionModel: BiLSTM(64) on the per-utterance concatenation → Dense(64, relu) →
    Dense(num_classes, softmax). Deviations: none beyond the shared ones."""
    h = bilstm(x.sequence(), x.mask, units, name="bilstm")
    return softmax_head(h, num_classes, hidden=hidden)


@register_architecture("late_fusion_repr")
def late_fusion_repr(x: ModelInputs, num_classes: int, *, units: int = 64, hidden: int = 64):
    """§2.2 NB2 LateFusionModel (the upstream "late fusion", really representation-level): one BiLSTM(64) per
    modality → Concatenate per utterance → Dense(64, relu) → Dense(num_classes, softmax).
    Deviations: none beyond the shared ones."""
    branches = [bilstm(f, x.mask, units, name=f"{m}_bilstm") for m, f in x.features.items()]
    h = branches[0] if len(branches) == 1 else layers.Concatenate(axis=-1, name="fusion")(branches)
    return softmax_head(h, num_classes, hidden=hidden)


@register_architecture("late_fusion_decision")
def late_fusion_decision(x: ModelInputs, num_classes: int, *, units: int = 64, hidden: int = 64,
                         pooling: str = "linear"):
    """Decision-level late fusion (ours; upstream had none): each modality m gets its own classifier,
    BiLSTM(64) → Dense(64, relu) → Dense(num_classes, softmax), giving posteriors p_m, and the modalities meet
    only through them. ``pooling`` combines them:

    - ``'linear'`` (default): the convex combination Σ_m α_m p_m, α = softmax(w), one learned logit per modality,
      starting from the plain average (:class:`ConvexCombination`); α shows how much each modality is trusted;
    - ``'log'``: the weighted product softmax(Σ_m w_m log p_m), w_m ≥ 0 starting at 1 (:class:`LogLinearPool`),
      where agreeing modalities add up instead of averaging out.

    Trained end to end on the fused output, so the branches are not separately calibrated classifiers.
    """
    if pooling not in ("linear", "log"):
        raise ValueError(f"late_fusion_decision: pooling must be 'linear' or 'log', got {pooling!r}")
    posteriors = []
    for m, f in x.features.items():
        h = bilstm(f, x.mask, units, name=f"{m}_bilstm")
        posteriors.append(softmax_head(h, num_classes, hidden=hidden, name=f"{m}_classifier"))
    pool = ConvexCombination if pooling == "linear" else LogLinearPool
    return pool(name="decision_fusion")(posteriors)


@register_architecture("text_bilstm", modalities=("text",))
def text_bilstm(x: ModelInputs, num_classes: int, *, units: int = 64, dropout: float = 0.5, hidden: int = 64):
    """§2.3 NB3 text-only baseline RNNModel: BiLSTM(64) → BiLSTM(64) → Dropout(0.5) → Dense(64, relu) →
    Dense(num_classes, softmax); text only. Deviations: none beyond the shared ones."""
    h = bilstm(x.features["text"], x.mask, units, name="bilstm1")
    h = bilstm(h, x.mask, units, name="bilstm2")
    return softmax_head(h, num_classes, hidden=hidden, dropout=dropout)


@register_architecture("multimodal_seed", modalities=("text", "audio", "visual"))
def multimodal_seed(x: ModelInputs, num_classes: int, *, d_model: int = 128, num_heads: int = 8, units: int = 64,
                    conv_filters: int = 128, conv_kernels: Sequence[int] = (8, 3), visual_heads: int = 8,
                    visual_key_dim: int = 64):
    """§2.3 NB3 final MultimodalModel (d_model 128, 8 heads): text BiLSTM×2 → Dense(128); audio
    Conv1D(128, k8) → Conv1D(128, k3) → Dense(128); visual MHA(8, key_dim 64) → same convs → Dense(128);
    text→audio and text→visual CrossModalAttention (8 heads, key_dim 16); Concatenate → Dense(num_classes,
    softmax). No dropout.

    Deviations (fixes, flaw B11): padded keys are masked in both cross-attentions, and padded steps are zeroed
    before every convolution (upstream lost the mask at the convolutions, so text queries attended to padding and
    'same' convolutions mixed padding activations into the last utterances).
    """
    text = seed_text_branch(x.features["text"], x.mask, units=units, d_model=d_model)
    audio = seed_audio_branch(x.features["audio"], x.mask, d_model=d_model, filters=conv_filters,
                              kernel_sizes=conv_kernels)
    visual = seed_visual_branch(x.features["visual"], x.mask, d_model=d_model, filters=conv_filters,
                                kernel_sizes=conv_kernels, num_heads=visual_heads, key_dim=visual_key_dim)
    return seed_fusion(text, audio, visual, x.mask, num_classes, d_model=d_model, num_heads=num_heads)


@register_architecture("multimodal_seed_tfaudio", modalities=("text", "audio", "visual"))
def multimodal_seed_tfaudio(x: ModelInputs, num_classes: int, *, d_model: int = 128, num_heads: int = 8,
                            units: int = 64, conv_filters: int = 128, conv_kernels: Sequence[int] = (8, 3),
                            visual_heads: int = 8, visual_key_dim: int = 64, audio_blocks: int = 2,
                            audio_heads: int = 4, audio_dff: int = 2048, audio_dropout: float = 0.1):
    """The upstream README's variant of §2.3 (never run upstream; docs/upstream.md §2.3 "README vs code mismatch"): as
    ``multimodal_seed`` but the audio branch is 2 × TransformerBlock(d_model = audio width, 4 heads, key_dim
    width // 4, dff 2048, dropout 0.1; padded keys masked in both) → Dense(128, relu). Same fixes as
    ``multimodal_seed``. The README gives no key_dim or dropout; these follow NB2's TransformerModel.
    """
    text = seed_text_branch(x.features["text"], x.mask, units=units, d_model=d_model)
    audio = transformer_audio_branch(x.features["audio"], x.mask, d_model=d_model, num_blocks=audio_blocks,
                                     num_heads=audio_heads, dff=audio_dff, dropout=audio_dropout)
    visual = seed_visual_branch(x.features["visual"], x.mask, d_model=d_model, filters=conv_filters,
                                kernel_sizes=conv_kernels, num_heads=visual_heads, key_dim=visual_key_dim)
    return seed_fusion(text, audio, visual, x.mask, num_classes, d_model=d_model, num_heads=num_heads)


# ------------------------------------------------------------------------------------------------ ours

def projection(x, d_model: int, dropout: float, *, name: str):
    """LayerNorm → Dense(d_model, gelu) → Dropout: one modality's features in the shared width."""
    x = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x)
    x = layers.Dense(d_model, activation="gelu", name=f"{name}_proj")(x)
    return layers.Dropout(dropout, name=f"{name}_proj_dropout")(x)


@register_architecture("multimodal", modalities=("text", "audio", "visual"), speaker=True)
def multimodal(x: ModelInputs, num_classes: int, *, num_speakers: int = 2, d_model: int = 96, units: int = 64,
               num_heads: int = 4, dropout: float = 0.3, modality_dropout: float = 0.15, speaker: bool = True,
               cross_attention: bool = True, utterance_fusion: bool = True, cell: str = "gru"):
    """Our multimodal model: the study's text-centred design, made lighter and sounder.

    1. Each modality → LayerNorm → Dense(d_model, gelu) → Dropout (``projection``); audio and visual go through
       :class:`ModalityDropout` in training (``modality_dropout``).
    2. Per-utterance fusion (``utterance_fusion``): Dense(d_model) over the concatenated projections, so aligned
       evidence from all three modalities is combined before any context is read.
    3. Text-centred cross-modal attention (``cross_attention``, the study's idea): text queries attend over the
       audio and the visual sequences (padded keys masked); both are added as residuals, then LayerNorm.
    4. The speaker of each utterance (``speaker``; the study ignored it) as a learned embedding added per utterance:
       by default its party within the dialogue (``speaker_identity``, see the module docstring).
    5. One bidirectional GRU (``cell``: 'gru' or 'lstm') over the dialogue for context, Dense back to d_model,
       residual + LayerNorm; Dropout → Dense(num_classes, softmax).
    Every switch exists for the ablations in ``experiments.py``.
    """
    mask = x.mask
    h = {m: projection(f, d_model, dropout, name=m) for m, f in x.features.items()}
    for m in ("audio", "visual"):
        if modality_dropout:
            h[m] = ModalityDropout(modality_dropout, name=f"{m}_modality_dropout")(h[m])
    if utterance_fusion:
        fused = layers.Dense(d_model, activation="gelu", name="utterance_fusion")(
            layers.Concatenate(name="modalities")([h["text"], h["audio"], h["visual"]]))
    else:
        fused = h["text"]
    if cross_attention:
        to_audio = CrossModalAttention(d_model, num_heads, name="text_to_audio")(
            h["text"], h["audio"], query_mask=mask, context_mask=mask)
        to_visual = CrossModalAttention(d_model, num_heads, name="text_to_visual")(
            h["text"], h["visual"], query_mask=mask, context_mask=mask)
        fused = layers.Add(name="cross_modal_residual")([fused, to_audio, to_visual])
    fused = layers.LayerNormalization(epsilon=1e-6, name="fusion_norm")(fused)
    if speaker:
        fused = layers.Add(name="with_speaker")([fused, layers.Embedding(num_speakers, d_model,
                                                                           name="speaker_embedding")(x.speaker)])
    fused = ApplyMask(name="fused_zero_padding")(fused, mask)
    rnn = {"gru": layers.GRU, "lstm": layers.LSTM}[cell]
    context = layers.Bidirectional(rnn(units, return_sequences=True), name=f"context_bi{cell}")(fused, mask=mask)
    context = layers.Dense(d_model, name="context_proj")(ApplyMask(name="context_out")(context, mask))
    context = layers.Dropout(dropout, name="context_dropout")(context)
    z = layers.LayerNormalization(epsilon=1e-6, name="context_norm")(layers.Add(name="context_residual")(
        [fused, context]))
    return softmax_head(z, num_classes, dropout=dropout)


# --- text-only context models ---

@keras.saving.register_keras_serializable(package="mser")
class SpeakerMask(layers.Layer):
    """``SpeakerMask(s)(present, speaker)``: (B, T) bool, true at the real utterances of speaker ``s`` only.

    Used as ``mask=`` of a recurrent layer, it makes the layer read one speaker's utterances and carry its state
    across the other speaker's turns (and stop at padding). Attaches no Keras mask.
    """

    def __init__(self, speaker_id: int, **kwargs):
        super().__init__(**kwargs)
        self.speaker_id = int(speaker_id)
        self.supports_masking = True

    def call(self, present, speaker):
        real = keras.ops.greater(keras.ops.cast(present, "float32"), 0.5)
        return keras.ops.logical_and(real, keras.ops.equal(speaker, self.speaker_id))

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self):
        return {**super().get_config(), "speaker_id": self.speaker_id}


@register_architecture("text_context", modalities=("text",), speaker=True)
def text_context(x: ModelInputs, num_classes: int, *, num_speakers: int = 2, d_model: int = 256, units: int = 128,
                 cell: str = "lstm", input_dropout: float = 0.2, dropout: float = 0.3, speaker: bool = True,
                 dialogue_context: bool = True, speaker_context: bool = True):
    """Text-only context model (ours): what each utterance says, who says it, and what came around it.

    1. LayerNorm → Dropout(``input_dropout``) → Dense(d_model, gelu) → Dropout: the utterance vector ``u``.
    2. ``speaker``: a learned embedding of who speaks added to ``u`` (the study ignored it): by default the party
       within the dialogue (first to speak = 0), or the corpus-wide speaker with ``speaker_identity='global'``.
    3. ``dialogue_context``: a bidirectional ``cell`` ('lstm' or 'gru', ``units``) over the whole dialogue.
    4. ``speaker_context``: one bidirectional ``cell`` (weights shared by all parties) per party row, reading only
       that party's utterances (:class:`SpeakerMask`): each utterance sees its speaker's own earlier and later
       turns, as in party-state models (DialogueRNN). Each position takes its own party's output.
    5. Concatenate [u, dialogue context, speaker context] → Dropout → Dense(num_classes, softmax).

    Padded steps are masked in every recurrent layer and zeroed after it. Speaker ids at padding are never read.
    One speaker pass is traced per row (``num_speakers``: the parties of the busiest training dialogue, at most
    ``MAX_PARTIES``; later parties share the last row), so the cost does not grow with the corpus's speaker names.
    """
    mask = x.mask
    u = layers.LayerNormalization(epsilon=1e-6, name="text_norm")(x.features["text"])
    if input_dropout:
        u = layers.Dropout(input_dropout, name="text_input_dropout")(u)
    u = layers.Dense(d_model, activation="gelu", name="text_proj")(u)
    u = layers.Dropout(dropout, name="text_proj_dropout")(u)
    if speaker:
        u = layers.Add(name="with_speaker")([u, layers.Embedding(num_speakers, d_model,
                                                                 name="speaker_embedding")(x.speaker)])
    u = ApplyMask(name="utterance_zero_padding")(u, mask)
    rnn = {"gru": layers.GRU, "lstm": layers.LSTM}[cell]
    parts = [u]
    if dialogue_context:
        h = layers.Bidirectional(rnn(units, return_sequences=True), name=f"dialogue_bi{cell}")(u, mask=mask)
        parts.append(ApplyMask(name="dialogue_context")(h, mask))
    if speaker_context:
        reader = layers.Bidirectional(rnn(units, return_sequences=True), name=f"speaker_bi{cell}")
        own = []
        for s in range(num_speakers):
            turns = SpeakerMask(s, name=f"speaker{s}_turns")(x.present, x.speaker)
            own.append(ApplyMask(name=f"speaker{s}_context")(reader(u, mask=turns), turns))
        parts.append(own[0] if len(own) == 1 else layers.Add(name="speaker_context")(own))
    return softmax_head(layers.Concatenate(name="utterance_and_context")(parts), num_classes, dropout=dropout)
