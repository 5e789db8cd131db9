"""What every layer of the suite shares: the Keras registration (package ``mser``: saved ``.keras`` files name
the layers ``mser>Name``), the base class that takes the padding mask explicitly, and the mask helpers."""
from __future__ import annotations

import keras
from keras import layers, ops

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

