"""Named experiments: the one place where every configuration of the study lives.

``EXPERIMENTS`` maps a name (what ``mser list`` prints and ``mser run NAME`` takes) to an :class:`Experiment`
(:mod:`model_utils.config`): an architecture from :mod:`model_utils.architectures`, the modalities it reads, its
hyperparameters and training settings. The CLI, the notebooks and the tests all import it from here. Groups
(``timnet``, ``exploratory``, ``fusion``, ``final``, ``ablation``) say which notebook runs a row; a family holds the
rows that share an architecture, whose fused members are compared with the unimodal ones.

Your own experiments need no registration: build an :class:`Experiment` and pass it to ``run_experiment`` or
``run_many``, which check it against the architecture registry before anything trains
(:func:`model_utils.registry.resolve_experiment`). Nothing here imports a deep-learning backend, so `mser list`
starts fast; ``tests/test_experiments.py`` checks every registered experiment.
"""
from __future__ import annotations

import difflib

from .config import GROUPS, Experiment, Params, TrainConfig

__all__ = ["ABLATIONS", "ALL", "EXPERIMENTS", "GROUPS", "Experiment", "Params", "TrainConfig", "by_group",
           "get_experiment"]

ALL = ("text", "audio", "visual")
UNIMODAL = {"text": ("text",), "audio": ("audio",), "visual": ("visual",), "all": ALL}


def _registry() -> dict[str, Experiment]:
    exps: list[Experiment] = []
    for mod, modalities in UNIMODAL.items():
        width = "712-d concatenation audio|visual|text" if mod == "all" else mod
        exps.append(Experiment(
            f"timnet-{mod}", "timnet", ("audio", "visual", "text") if mod == "all" else modalities,
            f"TIM-Net sequence labeller on {width} (NB1), backward branch re-aligned", "timnet", "timnet"))
    for arch, what in (("rnn", "self-attention + 2 Bi-LSTM"), ("cnn", "3 Conv1D"),
                       ("transformer", "2 post-LN Transformer blocks")):
        for mod, modalities in UNIMODAL.items():
            exps.append(Experiment(
                f"{arch}-{mod}", arch, ("audio", "visual", "text") if mod == "all" else modalities,
                f"{what} on {mod} (NB2)", "exploratory", arch))
    for mod, modalities in UNIMODAL.items():
        name = "early-fusion" if mod == "all" else f"early-fusion-{mod}"
        exps.append(Experiment(
            name, "early_fusion", ("audio", "visual", "text") if mod == "all" else modalities,
            "one Bi-LSTM over the concatenated features (NB2 early fusion)" if mod == "all"
            else f"the early-fusion Bi-LSTM on {mod} alone (NB2)", "fusion", "bilstm"))
    exps += [
        Experiment("late-fusion-repr", "late_fusion_repr", ALL,
                   "a Bi-LSTM per modality, concatenated per utterance (NB2's 'late fusion')", "fusion", "bilstm"),
        Experiment("late-fusion-decision", "late_fusion_decision", ALL,
                   "decision-level late fusion: unimodal Bi-LSTM posteriors, learned convex combination",
                   "fusion", "bilstm"),
        Experiment("text-bilstm", "text_bilstm", ("text",),
                   "the upstream text-only baseline: 2 Bi-LSTM (NB3)", "final", "final"),
        Experiment("text-context", "text_context", ("text",),
                   "ours, text only: LayerNorm + projection, party embedding, a dialogue BiLSTM and a per-party "
                   "BiLSTM, utterance skip", "final", "text"),
        Experiment("multimodal-seed", "multimodal_seed", ALL,
                   "the upstream final model as published (NB3), masks fixed", "final", "final"),
        Experiment("multimodal-seed-tfaudio", "multimodal_seed_tfaudio", ALL,
                   "the README's variant: Transformer blocks for audio", "final", "final"),
        Experiment("multimodal", "multimodal", ALL,
                   "ours: projections, utterance fusion + text-centred cross-attention, speaker, one BiGRU, "
                   "dropout and modality dropout", "final", "final"),
    ]
    exps += [
        Experiment(f"multimodal-{name}", "multimodal", ALL, f"ablation of multimodal: {what}", "ablation",
                   "final", hparams=hparams, train=train)
        for name, what, hparams, train in ABLATIONS
    ]
    return {e.name: e for e in exps}


# Each ablation switches off (or swaps) one design choice of `multimodal`; all else stays as in `multimodal`.
# (name, what, hparams, train): hparams and training settings that differ from `multimodal`.
ABLATIONS = (
    ("no-speaker", "without the speaker embedding", {"speaker": False}, {}),
    ("no-xattn", "without the text-centred cross-modal attention", {"cross_attention": False}, {}),
    ("no-utterance-fusion", "without per-utterance fusion (text + cross-attention only, as upstream)",
     {"utterance_fusion": False}, {}),
    ("no-modality-dropout", "without modality dropout", {"modality_dropout": 0.0}, {}),
    ("no-dropout", "without any dropout", {"dropout": 0.0, "modality_dropout": 0.0}, {}),
    ("no-standardize", "without input standardisation", {}, {"standardize": False}),
    ("lstm", "a BiLSTM instead of the BiGRU for context", {"cell": "lstm"}, {}),
)


EXPERIMENTS: dict[str, Experiment] = _registry()


def get_experiment(name: str) -> Experiment:
    """The registered experiment ``name``; ``KeyError`` naming the closest names (``difflib``) if there is none."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        close = difflib.get_close_matches(name, EXPERIMENTS, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else "; `mser list` shows them all"
        raise KeyError(f"unknown experiment {name!r}{hint}") from None


def by_group(group: str) -> list[Experiment]:
    """The registered experiments of ``group``, in registry order."""
    return [e for e in EXPERIMENTS.values() if e.group == group]
