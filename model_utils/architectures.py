"""Every architecture of the suite: those of the upstream study (``docs/upstream.md`` §2), rebuilt with the Keras 3
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

Where the code lives: :mod:`model_utils.registry` (registration, building, checks), :mod:`model_utils.models`
(``blocks``, ``upstream``, ``ours``); this module gathers them under the names notebooks and scripts import.
"""
from __future__ import annotations

from .models.blocks import (bilstm, conv_stack, seed_audio_branch, seed_fusion, seed_text_branch,  # noqa: F401
                            seed_visual_branch, self_attention, softmax_head, transformer_audio_branch,
                            transformer_stack)
from .models.ours import SpeakerMask, multimodal, projection, text_context  # noqa: F401
from .models.upstream import (cnn, early_fusion, late_fusion_decision, late_fusion_repr, multimodal_seed,  # noqa: F401
                              multimodal_seed_tfaudio, rnn, text_bilstm, timnet, transformer)
from .registry import (ARCHITECTURES, MAX_PARTIES, SPEAKER_IDENTITIES, ModelInputs, architecture_code,  # noqa: F401
                       build_for, build_model, check_experiment, check_modalities, default_hparams, get_builder, is_built_in,
                       override_keys, register_architecture, required_inputs, speaker_rows)

__all__ = ["ARCHITECTURES", "MAX_PARTIES", "ModelInputs", "build_for", "build_model", "check_modalities",
           "default_hparams", "register_architecture", "required_inputs", "speaker_rows",
           "bilstm", "conv_stack", "self_attention", "transformer_stack", "softmax_head",
           "seed_text_branch", "seed_audio_branch", "seed_visual_branch", "transformer_audio_branch",
           "seed_fusion"]
