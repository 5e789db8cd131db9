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
- :class:`ModalityDropout`: silences a whole modality of a dialogue at random in training (our multimodal model);
  :class:`SpeakerMask`: one speaker's real utterances, as the ``mask=`` of a recurrent layer (``text_context``).

No layer here attaches a Keras mask (``_keras_mask``) to its output: masks travel as explicit tensors only.

Where they live: ``base`` (registration, the base class, mask helpers), ``basic``, ``attention``, ``timnet``; every
name imports from here. Importing this module registers every layer with Keras, so ``keras.saving.load_model``
reads any model of the suite (``import model_utils`` arranges that as soon as Keras is imported).
"""
from __future__ import annotations

from .attention import CrossModalAttention, MaskedAttention, TransformerBlock
from .base import _ExplicitMaskLayer, as_bool_mask, key_padding_attention_mask, register, zero_padding  # noqa: F401
from .basic import (ApplyMask, BoolMask, ClipIndex, ConvexCombination, LogLinearPool, MaskedReverse, ModalityDropout,
                    SinusoidalPositionEncoding, SpeakerMask)
from .timnet import TemporalAwareBlock, TimNet

__all__ = [
    "ApplyMask", "BoolMask", "ClipIndex", "ConvexCombination", "CrossModalAttention", "LogLinearPool", "MaskedAttention",
    "MaskedReverse", "ModalityDropout", "SinusoidalPositionEncoding", "SpeakerMask", "TemporalAwareBlock", "TimNet",
    "TransformerBlock", "as_bool_mask", "key_padding_attention_mask", "zero_padding",
]
