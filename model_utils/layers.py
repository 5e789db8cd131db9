"""Keras 3 layers for labelling every utterance of a padded dialogue, with the padding mask honoured explicitly.

Every layer that mixes time steps takes the padding mask as an argument: a (B, T) tensor, bool or float, true / 1.0
at real utterances (``ERCDataset.present``) and false / 0.0 at padding, which sits at the END of each row. The
contract: outputs at real positions never depend on what the padded positions contain, nor on how many there are
(in inference mode, and in training mode too apart from dropout noise), so no layer relies on the padding being
zeros. That holds for any finite padding values; NaN/inf would survive a zero attention weight, which is one reason
the models of ``architectures`` also zero their inputs at padding on entry.

- :class:`ApplyMask` zeroes padded steps (``where``, so even NaN garbage goes); :class:`BoolMask` turns ``present``
  into the bool mask that ``LSTM`` / ``Bidirectional`` take as ``mask=``; :class:`ClipIndex` bounds speaker and
  party indices to an embedding's rows.
- :class:`MaskedAttention` / :class:`CrossModalAttention`: multi-head attention whose padded keys are masked.
- :class:`TransformerBlock`: the upstream post-LN block, masking padded keys in every block (flaw B12, docs/upstream.md).
- :class:`SinusoidalPositionEncoding`: opt-in absolute positions for the Transformers.
- :class:`MaskedReverse`, :class:`TemporalAwareBlock`, :class:`TimNet`: TIM-Net for sequence labelling with the
  backward stream aligned to the forward one (flaw B1, docs/upstream.md).
- :class:`ConvexCombination` / :class:`LogLinearPool`: a learned average / weighted product of per-modality
  posteriors (decision-level fusion).
- :class:`ModalityDropout`: silences a whole modality of a dialogue at random in training (our multimodal model).

No layer here attaches a Keras mask (``_keras_mask``) to its output: masks travel as explicit tensors only.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

__all__ = [
    "ApplyMask", "BoolMask", "ClipIndex", "ConvexCombination", "CrossModalAttention", "LogLinearPool", "MaskedAttention",
    "MaskedReverse", "ModalityDropout",
    "SinusoidalPositionEncoding", "TemporalAwareBlock", "TimNet", "TransformerBlock",
    "as_bool_mask", "key_padding_attention_mask", "zero_padding",
]

register = keras.saving.register_keras_serializable(package="mser")


class _ExplicitMaskLayer(layers.Layer):
    """Base of the layers here: takes the padding mask as an explicit argument and attaches no Keras mask.

    Keras 3 treats an explicit ``mask=`` as the layer's incoming mask; ``supports_masking`` with a ``compute_mask``
    returning None accepts it quietly and stops it (and any mask the input carried, e.g. from an LSTM called with
    ``mask=``) from reaching later layers, where it would silently change attention and loss normalisation.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, previous_mask=None):
        return None


# ------------------------------------------------------------------------------------------------ mask helpers

def as_bool_mask(mask):
    """A (B, T) padding mask as bool: bool passes through, numbers are real where > 0.5."""
    if mask is None or keras.backend.standardize_dtype(mask.dtype) == "bool":
        return mask
    return ops.greater(ops.cast(mask, "float32"), 0.5)


def zero_padding(x, mask):
    """``x`` (B, T, ...) with every padded step set to 0 (``where``, not a product: NaN/inf garbage goes too)."""
    keep = as_bool_mask(mask)
    for _ in range(len(x.shape) - 2):
        keep = ops.expand_dims(keep, -1)
    return ops.where(keep, x, ops.zeros_like(x))


def key_padding_attention_mask(query, key_mask):
    """(B, Tq, Tk) bool attention mask letting every query attend to the real keys only."""
    every_query = ops.ones_like(query[:, :, :1], dtype="bool")  # (B, Tq, 1)
    return ops.logical_and(every_query, ops.expand_dims(as_bool_mask(key_mask), 1))  # (B, Tq, Tk)


# ------------------------------------------------------------------------------------------------ small layers

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


# ------------------------------------------------------------------------------------------------ attention

@register
class MaskedAttention(_ExplicitMaskLayer):
    """``MultiHeadAttention`` whose padded keys are masked; self-attention when ``context`` is None.

    ``call(query, context=None, query_mask=None, context_mask=None)``: every query attends to the real
    positions of ``context`` only (``context_mask``; for self-attention ``query_mask`` serves as the key mask).
    Outputs at padded queries are set to 0 when ``query_mask`` is given. The output width is the query width.
    """

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None, dropout: float = 0.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.value_dim, self.dropout = num_heads, key_dim, value_dim, dropout
        self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=key_dim, value_dim=value_dim,
                                                   dropout=dropout, name="mha")

    def build(self, query_shape, context_shape=None):
        self.attention.build(query_shape, query_shape if context_shape is None else context_shape)

    def call(self, query, context=None, query_mask=None, context_mask=None, training=None):
        if context is None:
            context = query
            context_mask = query_mask if context_mask is None else context_mask
        attention_mask = None if context_mask is None else key_padding_attention_mask(query, context_mask)
        out = self.attention(query, context, attention_mask=attention_mask, training=training)
        return out if query_mask is None else zero_padding(out, query_mask)

    def compute_output_shape(self, query_shape, context_shape=None):
        return query_shape

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout}


@register
class CrossModalAttention(MaskedAttention):
    """Queries from one modality, keys/values from another; upstream ``CrossModalAttentionLayer(d_model, heads)``.

    That is ``MultiHeadAttention(num_heads, key_dim=d_model // num_heads)`` (docs/upstream.md §2.3), here with the padded
    keys of ``context`` masked (the upstream attended over them: flaw B11, docs/upstream.md).
    """

    def __init__(self, d_model: int, num_heads: int, **kwargs):
        kwargs.pop("key_dim", None)
        kwargs.pop("value_dim", None)
        super().__init__(num_heads=num_heads, key_dim=d_model // num_heads, **kwargs)
        self.d_model = d_model

    def get_config(self):
        config = super().get_config()
        del config["key_dim"], config["value_dim"]
        return {**config, "d_model": self.d_model}


@register
class TransformerBlock(_ExplicitMaskLayer):
    """Upstream post-LN Transformer encoder block (docs/upstream.md §2.2), masking padded keys.

    MHA(x, x) → Dropout → LayerNorm(ε 1e-6)(x + attn); Dense(dff, relu) → Dense(d_model) → Dropout →
    LayerNorm(ε 1e-6)(out1 + ffn). ``key_dim`` defaults to ``d_model // num_heads``. The input width must be
    ``d_model`` (residual connections, no input projection, as upstream). ``call(x, mask=None, training=None)``.
    """

    def __init__(self, d_model: int, num_heads: int, dff: int, dropout: float = 0.1, key_dim: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dff, self.dropout = d_model, num_heads, dff, dropout
        self.key_dim = key_dim or d_model // num_heads
        self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=self.key_dim, name="mha")
        self.ffn_hidden = layers.Dense(dff, activation="relu", name="ffn_hidden")
        self.ffn_out = layers.Dense(d_model, name="ffn_out")
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1")
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2")
        self.drop1 = layers.Dropout(dropout)
        self.drop2 = layers.Dropout(dropout)

    def build(self, input_shape):
        if input_shape[-1] != self.d_model:
            raise ValueError(f"{self.name}: input width {input_shape[-1]} != d_model {self.d_model}")
        self.attention.build(input_shape, input_shape)
        self.norm1.build(input_shape)
        self.ffn_hidden.build(input_shape)
        self.ffn_out.build((*input_shape[:-1], self.dff))
        self.norm2.build(input_shape)

    def call(self, inputs, mask=None, training=None):
        attention_mask = None if mask is None else key_padding_attention_mask(inputs, mask)
        attn = self.attention(inputs, inputs, attention_mask=attention_mask, training=training)
        out1 = self.norm1(inputs + self.drop1(attn, training=training))
        ffn = self.ffn_out(self.ffn_hidden(out1))
        return self.norm2(out1 + self.drop2(ffn, training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "d_model": self.d_model, "num_heads": self.num_heads, "dff": self.dff,
                "dropout": self.dropout, "key_dim": self.key_dim}


# ------------------------------------------------------------------------------------------------ TIM-Net

@register
class TemporalAwareBlock(_ExplicitMaskLayer):
    """TIM-Net Temporal-Aware Block: ``x · sigmoid(block(x))`` (docs/upstream.md §2.1).

    block = 2 × [causal dilated Conv1D(filters, kernel_size, dilation_rate) → BatchNorm → activation →
    SpatialDropout1D(dropout)]; a 1×1 conv maps the residual only when the channel counts differ. With a mask,
    padded steps are zeroed before each convolution and BatchNorm uses masked batch moments.
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, dilation_rate: int = 1, dropout: float = 0.1,
                 activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.dilation_rate = filters, kernel_size, dilation_rate
        self.dropout, self.activation = dropout, activation
        self.convs = [layers.Conv1D(filters, kernel_size, dilation_rate=dilation_rate, padding="causal",
                                    name=f"conv{i}") for i in (1, 2)]
        self.norms = [layers.BatchNormalization(name=f"norm{i}") for i in (1, 2)]
        self.drops = [layers.SpatialDropout1D(dropout) for _ in (1, 2)]
        self.act = layers.Activation(activation)
        self.residual = None

    def build(self, input_shape):
        shape = tuple(input_shape)
        for conv, norm in zip(self.convs, self.norms):
            conv.build(shape)
            shape = (*shape[:-1], self.filters)
            norm.build(shape)
        if input_shape[-1] != self.filters:
            self.residual = layers.Conv1D(self.filters, 1, padding="same", name="residual")
            self.residual.build(input_shape)

    def call(self, inputs, mask=None, training=None):
        mask = as_bool_mask(mask)
        x = inputs
        for conv, norm, drop in zip(self.convs, self.norms, self.drops):
            x = conv(x if mask is None else zero_padding(x, mask))
            x = self.act(norm(x, training=training, mask=mask))
            x = drop(x, training=training)
        residual = inputs if self.residual is None else self.residual(inputs)
        return residual * ops.sigmoid(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "dilation_rate": self.dilation_rate, "dropout": self.dropout, "activation": self.activation}


@register
class TimNet(_ExplicitMaskLayer):
    """Bidirectional multi-scale TIM-Net stack for sequence labelling (NB1 adaptation, docs/upstream.md §2.1).

    Per direction a 1×1 causal Conv1D(filters), then ``num_stacks`` × ``num_dilations`` chained
    :class:`TemporalAwareBlock`\\ s with dilations 1, 2, 4, …; at each level forward + backward are added, and the
    levels are concatenated: (B, T, filters · num_stacks · num_dilations), time axis kept (no pooling).

    The fix (flaw B1, docs/upstream.md): the backward stream runs on each dialogue reversed within its own length
    (:class:`MaskedReverse`) and is reversed back the same way before the add, so at real step t the forward
    stream covers real steps 0..t and the backward stream real steps t..len-1 — never padding. Upstream
    reversed the padded 110 steps and never reversed back (forward t was added to backward 109-t).
    """

    def __init__(self, filters: int = 39, kernel_size: int = 2, num_dilations: int = 8, num_stacks: int = 1,
                 dropout: float = 0.1, activation: str = "relu", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.num_dilations = filters, kernel_size, num_dilations
        self.num_stacks, self.dropout, self.activation = num_stacks, dropout, activation
        self.reverse = MaskedReverse(name="masked_reverse")
        self.forward_in = layers.Conv1D(filters, 1, padding="causal", name="forward_in")
        self.backward_in = layers.Conv1D(filters, 1, padding="causal", name="backward_in")

        def blocks(direction):
            return [TemporalAwareBlock(filters, kernel_size, 2 ** i, dropout, activation,
                                       name=f"{direction}_tab_s{s}_d{2 ** i}")
                    for s in range(num_stacks) for i in range(num_dilations)]
        self.forward_blocks, self.backward_blocks = blocks("forward"), blocks("backward")

    def build(self, input_shape):
        self.forward_in.build(input_shape)
        self.backward_in.build(input_shape)
        shape = (*input_shape[:-1], self.filters)
        for block in (*self.forward_blocks, *self.backward_blocks):
            block.build(shape)

    def call(self, inputs, mask=None, training=None):
        mask = as_bool_mask(mask)
        x = inputs if mask is None else zero_padding(inputs, mask)
        forward = self.forward_in(x)
        backward = self.backward_in(self.reverse(x, mask))
        levels = []
        for forward_block, backward_block in zip(self.forward_blocks, self.backward_blocks):
            forward = forward_block(forward, mask=mask, training=training)
            backward = backward_block(backward, mask=mask, training=training)
            levels.append(forward + self.reverse(backward, mask))
        return ops.concatenate(levels, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters * self.num_stacks * self.num_dilations)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "num_dilations": self.num_dilations, "num_stacks": self.num_stacks, "dropout": self.dropout,
                "activation": self.activation}
