"""TIM-Net for sequence labelling: the temporal-aware block and the bidirectional multi-scale stack, with the
backward stream aligned to the forward one (flaw B1, docs/upstream.md)."""
from __future__ import annotations

from keras import layers, ops

from .base import _ExplicitMaskLayer, as_bool_mask, register, zero_padding
from .basic import MaskedReverse


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
