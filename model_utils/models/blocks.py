"""Building blocks the architectures share: recurrent, convolutional and attention stacks, the classifier head
and the seed study's per-modality branches. Each takes (B, T, D) features and the (B, T) bool padding ``mask`` and
returns (B, T, D') features that are zero at padding (docs/upstream.md §2 for the upstream ones)."""
from __future__ import annotations

from typing import Sequence

from keras import layers

from ..layers import ApplyMask, CrossModalAttention, MaskedAttention, SinusoidalPositionEncoding, TransformerBlock

__all__ = ["bilstm", "conv_stack", "self_attention", "transformer_stack", "softmax_head", "seed_text_branch",
           "seed_audio_branch", "seed_visual_branch", "transformer_audio_branch", "seed_fusion"]


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


