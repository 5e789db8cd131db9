"""Label schemes: the one place that says which emotion names become which classes.

A scheme maps the label *names* stored in a corpus to output classes. A name mapped to ``None`` is left out:
those utterances stay in the dialogue as context for the model, but they are masked out of the loss and of
every metric. There is no padding class anywhere; padding is the mask's job.

Utterances without an agreed label (IEMOCAP's ``xxx``, a blank label in a transcripts CSV: :data:`CONTEXT_LABELS`)
are such context under every built-in scheme and under ``'native'``: they stay in their dialogue and are never
scored. A scheme that wants to score them must map them to a class explicitly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .notes import note

# The label ids of Poria et al.'s pickle (``loadIEMOCAP.py``): videoLabels hold indices into this tuple.
IEMOCAP6 = ("hap", "sad", "neu", "ang", "exc", "fru")
# Label names that mean "no agreed label": IEMOCAP's evaluators' ``xxx`` and a blank label. Context, never scored.
CONTEXT_LABELS = ("xxx", "")
_UNSCORED = {name: None for name in CONTEXT_LABELS}


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
        """For each label name, its class index, or -1 where the scheme leaves it out (context, never scored).

        Raises a ValueError naming the labels the scheme does not know (so a typo never becomes a silent -1), with
        the known label each one differs from only by case, if any.
        """
        unknown = sorted(set(label_names) - set(self.mapping))
        if unknown:
            where = f"{source}: " if source else ""
            known = {n.casefold(): n for n in self.mapping if n}
            cased = [f"{u!r} (did you mean {known[u.casefold()]!r}?)" for u in unknown if u.casefold() in known]
            hint = ("; labels are case-sensitive: " + ", ".join(cased)) if cased else \
                "; use the scheme 'native' (--scheme native) to keep the corpus's own classes"
            raise ValueError(
                f"{where}labels {unknown} are not covered by label scheme {self.name!r} "
                f"(it knows {sorted(n for n in self.mapping if n)}){hint}"
            )
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[self.mapping[n]] if self.mapping[n] is not None else -1 for n in label_names],
                        dtype=np.int32)

    def unscored(self) -> tuple[str, ...]:
        """The label names this scheme keeps as context and never scores (e.g. ``xxx``, blank, standard4's fru)."""
        return tuple(sorted(n for n, c in self.mapping.items() if c is None))


MERGED4 = LabelScheme(
    "merged4",
    classes=("happy", "angry", "sad", "neutral"),
    mapping={"hap": "happy", "exc": "happy", "ang": "angry", "fru": "angry", "sad": "sad", "neu": "neutral",
             **_UNSCORED},
    description="The upstream study's 4 classes: happy = hap+exc, angry = ang+fru, sad, neutral (all 7433 "
                "utterances). Not comparable with the literature's 4-class IEMOCAP, which leaves fru out.",
)
STANDARD4 = LabelScheme(
    "standard4",
    classes=("happy", "angry", "sad", "neutral"),
    mapping={"hap": "happy", "exc": "happy", "ang": "angry", "fru": None, "sad": "sad", "neu": "neutral",
             **_UNSCORED},
    description="The literature's usual 4 classes: happy = hap+exc, angry, sad, neutral; frustrated utterances "
                "stay in the dialogues as context but are never scored.",
)
ORIGINAL6 = LabelScheme(
    "original6",
    classes=IEMOCAP6,
    mapping={**{n: n for n in IEMOCAP6}, **_UNSCORED},
    description="The six IEMOCAP labels of the ERC literature (hap, sad, neu, ang, exc, fru).",
)

SCHEMES: dict[str, LabelScheme] = {s.name: s for s in (MERGED4, STANDARD4, ORIGINAL6)}
# The default: the scheme follows the file (:func:`auto_scheme`).
DEFAULT_SCHEME = "auto"
# What --scheme takes: "auto", every built-in scheme, and "native" (the corpus's own classes, :func:`get_scheme`).
SCHEME_CHOICES = ("auto", *sorted(SCHEMES), "native")


def auto_scheme(label_names: Sequence[str]) -> str:
    """What ``'auto'`` means for a corpus whose label ids are named ``label_names``: ``'merged4'`` (the study's
    scheme) when every name is one of IEMOCAP's (:data:`IEMOCAP6`, besides :data:`CONTEXT_LABELS`), else ``'native'``
    (the file's own classes: MELD's emotions, CMU-MOSI's ``negative, positive``, your CSV's labels)."""
    named = set(label_names) - set(CONTEXT_LABELS)
    return "merged4" if named and named <= set(IEMOCAP6) else "native"


def get_scheme(name: str | LabelScheme, label_names: Sequence[str] = IEMOCAP6, *, source: str = "") -> LabelScheme:
    """Look a scheme up by name. ``'native'`` keeps the corpus's own label names as the classes; ``'auto'`` is
    :func:`auto_scheme` of ``label_names``; with ``source`` (the data file it is for) it says once which it chose."""
    if isinstance(name, LabelScheme):
        return name
    if name == "auto":
        chosen = auto_scheme(label_names)
        why = "IEMOCAP's label names" if chosen == "merged4" else "the file's own labels: " + ", ".join(
            n for n in label_names if n not in CONTEXT_LABELS)
        if source:
            note(f"{source}: label scheme auto -> {chosen} ({why}); --scheme chooses another")
        return get_scheme(chosen, label_names)
    if name == "native":
        classes = tuple(n for n in label_names if n not in CONTEXT_LABELS)
        return LabelScheme("native", classes=classes,
                           mapping={n: (None if n in CONTEXT_LABELS else n) for n in label_names},
                           description="The corpus's own label names, one class each (xxx and blank: context, "
                                       "never scored).")
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown label scheme {name!r}; choose one of {', '.join(SCHEME_CHOICES)}") from None
