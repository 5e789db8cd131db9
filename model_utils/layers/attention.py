"""Attention that masks padded keys: self- and cross-modal multi-head attention, and the upstream Transformer
block."""
from __future__ import annotations

from keras import layers

from .base import _ExplicitMaskLayer, key_padding_attention_mask, register, zero_padding


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
        out = self._attend(query, context, query_mask, context_mask, training)
        return out if query_mask is None else zero_padding(out, query_mask)

    def attention_scores(self, query, context=None, query_mask=None, context_mask=None):
        """(B, heads, Tq, Tk): the softmax weights this layer gives each key for each query, in inference mode, from
        its own (trained) weights; 0 at padded keys. Rows of padded queries are meaningless (their outputs are
        zeroed)."""
        _, scores = self._attend(query, context, query_mask, context_mask, False, scores=True)
        return scores

    def _attend(self, query, context, query_mask, context_mask, training, scores: bool = False):
        if context is None:
            context = query
            context_mask = query_mask if context_mask is None else context_mask
        attention_mask = None if context_mask is None else key_padding_attention_mask(query, context_mask)
        return self.attention(query, context, attention_mask=attention_mask, training=training,
                              return_attention_scores=scores)

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
