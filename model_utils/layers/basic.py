"""Small layers: masks and indices, zeroing padding, reversing within a dialogue, positions, decision-level
fusion of posteriors, and modality dropout."""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .base import _ExplicitMaskLayer, as_bool_mask, register, zero_padding


@register
class BoolMask(_ExplicitMaskLayer):
    """``present`` (B, T) float → (B, T) bool padding mask, for ``mask=`` of LSTM / Bidirectional."""

    def call(self, present):
        return as_bool_mask(present)


@register
class ClipIndex(_ExplicitMaskLayer):
    """Integer indices (B, T) clipped to ``0 … max_index``: every index beyond the last row shares it, and the
    ``-1`` that marks padding reads row 0 (never scored)."""

    def __init__(self, max_index: int, **kwargs):
        super().__init__(**kwargs)
        if int(max_index) < 0:
            raise ValueError(f"ClipIndex: max_index must be >= 0, got {max_index}")
        self.max_index = int(max_index)

    def call(self, indices):
        indices = ops.cast(indices, "int32")
        return ops.clip(indices, 0, self.max_index)

    def get_config(self):
        return {**super().get_config(), "max_index": self.max_index}


@register
class ApplyMask(_ExplicitMaskLayer):
    """``x`` with padded steps zeroed: ``ApplyMask()(x, present)``.

    Use it at model inputs, before convolutions, and after an LSTM called with ``mask=`` (whose output Keras tags
    with a mask; this layer drops the tag).
    """

    def call(self, inputs, mask):
        if mask is None:
            raise ValueError(f"{self.name}: ApplyMask needs the padding mask, got None")
        return zero_padding(inputs, mask)


@register
class MaskedReverse(_ExplicitMaskLayer):
    """Reverse every sequence WITHIN ITS OWN LENGTH: step t ↔ len-1-t for t < len; padded steps stay in place.

    ``len`` is the row's number of real steps, so this assumes right padding (real utterances first), as
    ``ERCDataset`` produces. The map is its own inverse. Without a mask it reverses the full time axis.
    """

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.flip(inputs, axis=1)
        length = ops.sum(ops.cast(as_bool_mask(mask), "int32"), axis=1, keepdims=True)  # (B, 1)
        steps = ops.expand_dims(ops.arange(ops.shape(inputs)[1], dtype="int32"), 0)  # (1, T)
        index = ops.where(steps < length, length - 1 - steps, steps)  # (B, T)
        for _ in range(len(inputs.shape) - 2):
            index = ops.expand_dims(index, -1)
        return ops.take_along_axis(inputs, index, axis=1)


@register
class SinusoidalPositionEncoding(_ExplicitMaskLayer):
    """Adds the Vaswani et al. sinusoidal encoding of the utterance index (0, 1, …) to ``x`` (B, T, D)."""

    def __init__(self, max_wavelength: float = 10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = float(max_wavelength)

    def call(self, inputs):
        length, width = ops.shape(inputs)[1], inputs.shape[-1]
        position = ops.cast(ops.arange(length), "float32")[:, None]  # (T, 1)
        channel = ops.arange(width)
        rate = ops.power(self.max_wavelength, -ops.cast(2 * (channel // 2), "float32") / float(width))  # (D,)
        angle = position * rate[None, :]
        encoding = ops.where(ops.equal(channel % 2, 0), ops.sin(angle), ops.cos(angle))
        return inputs + ops.cast(encoding[None], inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


@register
class ConvexCombination(_ExplicitMaskLayer):
    """``Σ_m softmax(w)_m · p_m`` over a list of same-shaped posteriors; ``w`` (one logit per input) is learned.

    Starts at the plain average (``w = 0``). A convex combination of distributions is a distribution, so the
    output rows still sum to 1.
    """

    def build(self, input_shape):
        self.fusion_logits = self.add_weight(shape=(len(input_shape),), initializer="zeros", name="fusion_logits")

    def call(self, inputs):
        weights = ops.softmax(self.fusion_logits)
        return ops.sum(ops.stack(list(inputs), axis=-1) * weights, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@register
class LogLinearPool(_ExplicitMaskLayer):
    """``softmax(Σ_m w_m · log p_m)`` over a list of same-shaped posteriors: a weighted product of experts.

    ``w_m = softplus(v_m) ≥ 0`` is learned per input and starts at 1 (the plain product). Unlike an average of
    distributions, agreeing modalities add up: two posteriors of 0.6 for a class give more than 0.6, and a
    confident modality can overrule an unsure one. ``w_m → 0`` switches an input off.
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        one = float(np.log(np.expm1(1.0)))  # softplus⁻¹(1)
        self.pool_logits = self.add_weight(shape=(len(input_shape),), initializer=keras.initializers.Constant(one),
                                           name="pool_logits")

    def call(self, inputs):
        log_p = ops.log(ops.maximum(ops.stack(list(inputs), axis=-1), self.epsilon))
        return ops.softmax(ops.sum(log_p * ops.softplus(self.pool_logits), axis=-1), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@register
class ModalityDropout(_ExplicitMaskLayer):
    """In training, silence a whole modality of a dialogue with probability ``rate`` (identity at inference).

    Each dialogue draws once, so the model cannot count on any one modality being there and learns to use the
    others too (a missing or noisy modality at test time then costs less). Kept inputs are not rescaled: a
    modality is either there as it is, or absent.
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"ModalityDropout rate must be in [0, 1), got {rate}")
        self.rate, self.seed = float(rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0:
            return x
        keep = keras.random.uniform((ops.shape(x)[0], 1, 1), seed=self.seed_generator) >= self.rate
        return x * ops.cast(keep, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@register
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
