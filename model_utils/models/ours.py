"""Our architectures: the multimodal model (text-centred cross-modal attention over a text Bi-LSTM, an audio
pathway and a visual CNN + attention pathway, with speaker embeddings and dialogue context) and the text-only
context model. Registered on import."""
from __future__ import annotations

from keras import layers

from ..layers import ApplyMask, CrossModalAttention, ModalityDropout, SpeakerMask
from ..registry import ModelInputs, register_architecture
from .blocks import softmax_head

__all__ = ["projection", "multimodal", "SpeakerMask", "text_context"]


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
