"""The upstream study's architectures (docs/upstream.md §2), rebuilt with the Keras 3 functional API, plus a true
decision-level late fusion. Each builder's docstring lists its deviations from upstream; the shared ones are in
:mod:`model_utils.architectures`. Registered on import under the names experiments use."""
from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from ..layers import ConvexCombination, LogLinearPool, TimNet
from ..registry import ModelInputs, register_architecture
from .blocks import (bilstm, conv_stack, seed_audio_branch, seed_fusion, seed_text_branch, seed_visual_branch,
                     self_attention, softmax_head, transformer_audio_branch, transformer_stack)

__all__ = ["timnet", "rnn", "cnn", "transformer", "early_fusion", "late_fusion_repr", "late_fusion_decision",
           "text_bilstm", "multimodal_seed", "multimodal_seed_tfaudio"]


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


