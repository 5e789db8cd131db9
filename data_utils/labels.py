"""Label schemes: the one place that says which emotion names become which classes.

A scheme maps the label *names* stored in a corpus to output classes. A name mapped to ``None`` is left out:
those utterances stay in the dialogue as context for the model, but they are masked out of the loss and of
every metric. There is no padding class anywhere; padding is the mask's job.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

# The label ids of Poria et al.'s pickle (``loadIEMOCAP.py``): videoLabels hold indices into this tuple.
IEMOCAP6 = ("hap", "sad", "neu", "ang", "exc", "fru")


@dataclass(frozen=True)
class LabelScheme:
    name: str
    classes: tuple[str, ...]
    mapping: Mapping[str, str | None] = field(repr=False)
    description: str = ""

    def __post_init__(self):
        unknown = {c for c in self.mapping.values() if c is not None} - set(self.classes)
        if unknown:
            raise ValueError(f"label scheme {self.name!r} maps to unknown classes {sorted(unknown)}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_index(self, label_names: Sequence[str], *, source: str = "") -> np.ndarray:
        """For each label name, its class index, or -1 where the scheme leaves it out.

        Raises a ValueError naming the labels the scheme does not know (so a typo never becomes a silent -1).
        """
        unknown = sorted(set(label_names) - set(self.mapping))
        if unknown:
            where = f"{source}: " if source else ""
            raise ValueError(
                f"{where}labels {unknown} are not covered by label scheme {self.name!r} "
                f"(it knows {sorted(self.mapping)}); use scheme='native' to keep the corpus's own classes"
            )
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[self.mapping[n]] if self.mapping[n] is not None else -1 for n in label_names],
                        dtype=np.int32)


MERGED4 = LabelScheme(
    "merged4",
    classes=("happy", "angry", "sad", "neutral"),
    mapping={"hap": "happy", "exc": "happy", "ang": "angry", "fru": "angry", "sad": "sad", "neu": "neutral"},
    description="The upstream study's 4 classes: happy = hap+exc, angry = ang+fru, sad, neutral (all 7433 "
                "utterances). Not comparable with the literature's 4-class IEMOCAP, which leaves fru out.",
)
STANDARD4 = LabelScheme(
    "standard4",
    classes=("happy", "angry", "sad", "neutral"),
    mapping={"hap": "happy", "exc": "happy", "ang": "angry", "fru": None, "sad": "sad", "neu": "neutral"},
    description="The literature's usual 4 classes: happy = hap+exc, angry, sad, neutral; frustrated utterances "
                "stay in the dialogues as context but are never scored.",
)
ORIGINAL6 = LabelScheme(
    "original6",
    classes=IEMOCAP6,
    mapping={n: n for n in IEMOCAP6},
    description="The six IEMOCAP labels of the ERC literature (hap, sad, neu, ang, exc, fru).",
)

SCHEMES: dict[str, LabelScheme] = {s.name: s for s in (MERGED4, STANDARD4, ORIGINAL6)}
DEFAULT_SCHEME = "merged4"


def get_scheme(name: str | LabelScheme, label_names: Sequence[str] = IEMOCAP6) -> LabelScheme:
    """Look a scheme up by name. ``'native'`` keeps the corpus's own label names as the classes."""
    if isinstance(name, LabelScheme):
        return name
    if name == "native":
        return LabelScheme("native", classes=tuple(label_names), mapping={n: n for n in label_names},
                           description="The corpus's own label names, one class each.")
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown label scheme {name!r}; choose one of {sorted(SCHEMES) + ['native']}") from None
