"""The corpus in memory (:class:`Corpus`, :class:`Dialogue`), the names of Poria et al.'s fields, the errors and
warnings about data, and the checks every field shares (invisible characters, splits). Part of
:mod:`data_utils.corpus`, which re-exports every public name here."""
from __future__ import annotations

import re
import reprlib
import unicodedata
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from .labels import IEMOCAP6

MODALITIES = ("text", "audio", "visual")
FIELDS = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual", "videoSentence",
          "trainVid", "testVid")
MODALITY_FIELD = {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"}
SPLITS = ("train", "valid", "test")
NAME_LABELS_HINT = ("name its labels in order: `mser data convert FILE --label-names a,b,... --out NEW.pkl`, or a "
                    "10th element {'label_names': [...]} (README, 'Your data'), or read_corpus(path, label_names=...)")
FORMAT_VERSION = 1
_SESSION_PREFIX = re.compile(r"^Ses(\d+)")


def invisible_character(text: str) -> str | None:
    """The first character of ``text`` that cannot be seen and is not whitespace (NUL and other control characters,
    Unicode format characters such as U+200B ZERO WIDTH SPACE or U+FEFF, lone surrogates), described with its
    position (``'U+200B ZERO WIDTH SPACE at character 3'``); None when there is none. Such a character makes two
    names that look the same count as two speakers, classes or dialogues."""
    if text.isprintable():
        return None
    for i, ch in enumerate(text):
        if not ch.isspace() and unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            name = unicodedata.name(ch, "")
            return f"U+{ord(ch):04X}{' ' + name if name else ''} at character {i}"
    return None


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 120, 120, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 6
_REPR.maxlevel = 3


def brief(value) -> str:
    """``repr(value)`` for an error message, bounded in length and work whatever the value's size or nesting."""
    return _REPR.repr(value)


def session_from_id(dialogue_id: str) -> str:
    """IEMOCAP's session of a dialogue id (``Ses05M_script01_1`` -> ``Ses05``), or '' when the id has none."""
    match = _SESSION_PREFIX.match(dialogue_id)
    return f"Ses{int(match.group(1)):02d}" if match else ""


class DataWarning(UserWarning):
    """Something about the data a user should know before training (a guessed label set, an unread field, a class
    without training utterances); the command line prints it as one ``warning:`` line."""


class DataFormatError(ValueError):
    """The data file does not have the expected layout; the message names file, dialogue and field."""

    MAX_PROBLEM_CHARS = 1200  # a value's repr can be huge and span lines; the message stays one readable line

    def __init__(self, source: str, problem: str, *, dialogue: str | None = None, field: str | None = None):
        problem = " ".join(str(problem).split())
        if len(problem) > self.MAX_PROBLEM_CHARS:
            problem = problem[:self.MAX_PROBLEM_CHARS] + " …"
        if dialogue is not None:
            dialogue = " ".join(str(dialogue).split())[:200]
        self.source, self.dialogue, self.field, self.problem = source, dialogue, field, problem
        where = [str(source)]
        if dialogue is not None:
            where.append(f"dialogue {dialogue!r}")
        if field is not None:
            where.append(f"field {field}")
        super().__init__(": ".join(where) + ": " + problem)


@dataclass(frozen=True, eq=False)
class Dialogue:
    id: str
    utterance_ids: tuple[str, ...]
    speakers: tuple[str, ...]
    labels: tuple[str, ...]
    sentences: tuple[str, ...]
    features: Mapping[str, np.ndarray]  # modality -> (L, D) float32

    def __len__(self) -> int:
        return len(self.utterance_ids)


@dataclass(frozen=True, eq=False)
class Corpus:
    """A validated corpus: dialogues in sorted id order, splits as sorted tuples of dialogue ids."""

    dialogues: Mapping[str, Dialogue]
    splits: Mapping[str, tuple[str, ...]]
    label_names: tuple[str, ...] = IEMOCAP6
    synthetic: bool = False
    source: str = ""
    description: str = ""
    modalities: tuple[str, ...] = field(default=MODALITIES)
    sessions: Mapping[str, str] = field(default_factory=dict)  # explicit sessions; see session()
    # modality -> {"path": its saved extractor's JSON, "sha256": of that JSON}; see data_utils.extractors. In memory
    # the path is absolute (or as given); in a file, relative to the file (extras.extractors).
    extractors: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the metric the corpus is judged by (e.g. 'weighted_f1' for MELD), '' when it does not say: runs default to it
    metric: str = ""
    # the corpus's name for reports (e.g. 'CMU-MOSI'), '' when the file does not say (IEMOCAP is known by its hash)
    corpus: str = ""

    def __post_init__(self):
        _check_splits(self.source or "<corpus>", set(self.dialogues), self.splits)
        stray = sorted(set(self.sessions) - set(self.dialogues))
        if stray:
            raise DataFormatError(self.source or "<corpus>", "has a session but is no dialogue of the corpus",
                                  dialogue=stray[0], field="extras.sessions")
        stray = sorted(set(self.extractors) - set(self.modalities))
        if stray:
            raise DataFormatError(self.source or "<corpus>", f"names an extractor of modality {stray[0]!r}, which "
                                  f"the corpus has no features of", field="extras.extractors")

    def session(self, dialogue_id: str) -> str:
        """The recording session of a dialogue: the explicit one, else the id's ``SesNN`` prefix, else ''."""
        return self.sessions.get(dialogue_id) or session_from_id(dialogue_id)


def _check_visible(source, text: str, what: str, *, dialogue: str | None = None, field: str | None = None) -> None:
    """Refuse ``text`` (an id, a speaker, a label name) holding a character one cannot see (:func:`invisible_character`)."""
    found = invisible_character(text)
    if found:
        raise DataFormatError(source, f"the {what} {text!r} holds an invisible character, {found}; two names that look "
                                      "the same would count as two: remove it", dialogue=dialogue, field=field)


def _check_splits(source, ids, splits):
    for name in splits:
        if name not in SPLITS:
            raise DataFormatError(source, f"unknown split {name!r}; splits are {SPLITS}")
    seen = {}
    for name, members in splits.items():
        for d in members:
            if d not in ids:
                raise DataFormatError(source, f"split {name!r} names an unknown dialogue", dialogue=d)
            if d in seen:
                raise DataFormatError(source, f"is in both split {seen[d]!r} and split {name!r}", dialogue=d)
            seen[d] = name
