"""Named experiments: the one place where every configuration of the study lives.

``EXPERIMENTS`` maps a name (what ``mser list`` prints and ``mser run NAME`` takes) to an :class:`Experiment`:
an architecture from :mod:`model_utils.architectures`, the modalities it reads, its hyperparameters and
training settings. The CLI, the notebooks and the tests all import it from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

ALL = ("text", "audio", "visual")
UNIMODAL = {"text": ("text",), "audio": ("audio",), "visual": ("visual",), "all": ALL}


@dataclass(frozen=True)
class Experiment:
    name: str
    arch: str
    modalities: tuple[str, ...]
    description: str
    group: str  # timnet | exploratory | fusion | final | ablation: how notebooks and tables group rows
    family: str  # rows of one family share an architecture; fused members should beat the unimodal ones
    hparams: Mapping[str, object] = field(default_factory=dict)
    train: Mapping[str, object] = field(default_factory=dict)  # overrides of training.TrainConfig
    standardize: bool = False  # per-modality standardisation fitted on training dialogues

    @property
    def fused(self) -> bool:
        return len(self.modalities) > 1


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
                   "ours, text only (issue 5): LayerNorm + projection, speaker embedding, a dialogue BiLSTM and a "
                   "per-speaker BiLSTM, utterance skip; class-balanced loss", "final", "text",
                   train={"class_weight": "balanced"}),
        Experiment("multimodal-seed", "multimodal_seed", ALL,
                   "the upstream final model as published (NB3), masks fixed", "final", "final"),
        Experiment("multimodal-seed-tfaudio", "multimodal_seed_tfaudio", ALL,
                   "the README's variant: Transformer blocks for audio", "final", "final"),
        Experiment("multimodal", "multimodal", ALL,
                   "ours: projections, utterance fusion + text-centred cross-attention, speaker, one BiGRU, "
                   "dropout and modality dropout, standardised inputs", "final", "final", standardize=True),
    ]
    exps += [
        Experiment(f"multimodal-{name}", "multimodal", ALL, f"ablation of multimodal: {what}", "ablation",
                   "final", hparams=hparams, standardize=standardize)
        for name, what, hparams, standardize in ABLATIONS
    ]
    return {e.name: e for e in exps}


# Each ablation switches off (or swaps) one design choice of `multimodal`; all else stays as in `multimodal`.
ABLATIONS = (
    ("no-speaker", "without the speaker embedding", {"speaker": False}, True),
    ("no-xattn", "without the text-centred cross-modal attention", {"cross_attention": False}, True),
    ("no-utterance-fusion", "without per-utterance fusion (text + cross-attention only, as upstream)",
     {"utterance_fusion": False}, True),
    ("no-modality-dropout", "without modality dropout", {"modality_dropout": 0.0}, True),
    ("no-dropout", "without any dropout", {"dropout": 0.0, "modality_dropout": 0.0}, True),
    ("no-standardize", "without input standardisation", {}, False),
    ("lstm", "a BiLSTM instead of the BiGRU for context", {"cell": "lstm"}, True),
)


EXPERIMENTS: dict[str, Experiment] = _registry()


def get_experiment(name: str) -> Experiment:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        close = [n for n in EXPERIMENTS if name.split("-")[0] in n]
        hint = f"; did you mean one of {close}?" if close else "; `mser list` shows them all"
        raise KeyError(f"unknown experiment {name!r}{hint}") from None


def by_group(group: str) -> list[Experiment]:
    return [e for e in EXPERIMENTS.values() if e.group == group]
