"""The on-disk layout: Poria et al.'s IEMOCAP pickle, read safely and validated, and written back.

The file is a tuple ``(videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence,
trainVid, testVid)``: seven dicts keyed by dialogue id, holding per-utterance lists, then the training and test
dialogue ids. Labels are indices into ``IEMOCAP6`` (hap, sad, neu, ang, exc, fru).

Files this suite writes (synthetic data, features built from your transcripts or audio) add a tenth element, a
dict of extras: ``validVid`` (held-out part of ``trainVid``), ``label_names`` (what the label indices mean),
``sessions`` (dialogue id -> recording session, for corpora whose ids do not say it), ``synthetic`` and
``description``. A modality dict left empty means the modality is absent.

Sessions (for leave-one-session-out cross-validation): ``extras.sessions`` where given, else IEMOCAP's ``SesNN``
prefix of the dialogue id (``Ses01F_impro01`` -> ``Ses01``), else none.

Everything is validated on load, and every error names the file, the dialogue and the field. What a file may cost
is bounded (:class:`~data_utils.safe_pickle.Limits`: its size, arrays, containers, nesting, dialogues, utterances;
``read_corpus(path, limits=Limits(...))`` or ``MSER_LOAD_LIMITS`` raise them), and every check is linear in the
size of the file.
"""
from __future__ import annotations

import pickle
import re
import reprlib
import stat
import unicodedata
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .fileio import atomic_path
from .labels import IEMOCAP6
from .safe_pickle import DamagedPickleError, Limits, UnsafePickleError, safe_loads

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

    def __post_init__(self):
        _check_splits(self.source or "<corpus>", set(self.dialogues), self.splits)
        stray = sorted(set(self.sessions) - set(self.dialogues))
        if stray:
            raise DataFormatError(self.source or "<corpus>", "has a session but is no dialogue of the corpus",
                                  dialogue=stray[0], field="extras.sessions")

    def session(self, dialogue_id: str) -> str:
        """The recording session of a dialogue: the explicit one, else the id's ``SesNN`` prefix, else ''."""
        return self.sessions.get(dialogue_id) or session_from_id(dialogue_id)


# --------------------------------------------------------------------------------------------------- layouts

MELD7 = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
EXTRAS_KEYS = ("format", "version", "label_names", "validVid", "sessions", "synthetic", "description")


@dataclass(frozen=True)
class Layout:
    """A published tuple layout the reader recognises: its fields in order, and what its label ids mean."""

    name: str
    fields: tuple[str, ...]
    label_names: tuple[str, ...]
    description: str


LAYOUTS = {
    "poria": Layout("poria", FIELDS, IEMOCAP6,
                    "Poria et al.'s IEMOCAP 9-tuple (also DialogueRNN's and DialogueGCN's IEMOCAP files)"),
    "poria+extras": Layout("poria+extras", FIELDS + ("extras",), IEMOCAP6,
                           "the same with this suite's extras dict (validVid, label_names, sessions, ...)"),
    "poria+trailing": Layout("poria+trailing", FIELDS + ("(ignored)",), IEMOCAP6,
                             "the same with one more element of another tool's (not read)"),
    "dialoguernn-meld": Layout(
        "dialoguernn-meld",
        ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoSentence", "trainVid",
         "testVid", "videoLabelsSentiment"), MELD7,
        "DialogueRNN's multi-party MELD 9-tuple: no visual features, one-hot speakers, emotion labels "
        "(neutral, surprise, fear, sadness, joy, disgust, anger), sentiment labels last (not read)"),
}


def _kinds(obj) -> str:
    return ", ".join(type(x).__name__ for x in obj)


def _is_ids(x) -> bool:
    return isinstance(x, (list, tuple, set, frozenset))


def _identify_layout(obj, source: str) -> tuple[str, dict, dict]:
    """Which of :data:`LAYOUTS` ``obj`` is: (layout name, Poria field name -> value, extras dict)."""
    if not isinstance(obj, (tuple, list)):
        raise DataFormatError(source, f"expected a tuple in Poria et al.'s layout {FIELDS}, got a "
                                      f"{type(obj).__name__}")
    n = len(obj)
    poria_shaped = n >= 9 and all(isinstance(x, dict) for x in obj[:7]) and _is_ids(obj[7]) and _is_ids(obj[8])
    meld_shaped = n == 9 and all(isinstance(x, dict) for x in obj[:6]) and _is_ids(obj[6]) and _is_ids(obj[7]) \
        and isinstance(obj[8], dict)
    if meld_shaped:
        ids, speakers, labels, text, audio, sentences, train, test, _ = (_string_ids(x) for x in obj)
        named = {"videoIDs": ids, "videoSpeakers": _one_hot_speakers(speakers, source), "videoLabels": labels,
                 "videoText": text, "videoAudio": audio, "videoVisual": {}, "videoSentence": sentences,
                 "trainVid": train, "testVid": test}
        return "dialoguernn-meld", named, {}
    if n == 9:  # Poria's layout, or something close enough that a field-by-field error is the useful answer
        return "poria", dict(zip(FIELDS, obj)), {}
    if n == 10 and _is_extras(obj[9], obj[0] if isinstance(obj[0], dict) else {}):
        return "poria+extras", dict(zip(FIELDS, obj[:9])), obj[9]
    if n == 10 and poria_shaped:
        return "poria+trailing", dict(zip(FIELDS, obj[:9])), {}
    meld = LAYOUTS["dialoguernn-meld"].fields
    raise DataFormatError(
        source, f"expected Poria et al.'s 9-tuple ({', '.join(FIELDS)}), optionally with a 10th element (this "
                f"suite's extras dict, or another tool's, not read), or DialogueRNN's MELD 9-tuple "
                f"({', '.join(meld)}); found a {type(obj).__name__} of {n} elements ({_kinds(obj)}). Convert the file "
                f"to Poria's layout (README, 'Your data'), or write a transcripts CSV and use `mser features text`")


def _string_ids(value):
    """DialogueRNN's MELD file keys dialogues by integer: a dict's integer keys, or a split's integer ids, as
    strings (``0`` -> ``'0'``); anything else as it is."""
    def name(key):
        return str(int(key)) if isinstance(key, (int, np.integer)) and not isinstance(key, bool) else key
    if isinstance(value, dict):
        return {name(k): v for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(name(v) for v in value) if not isinstance(value, tuple) else tuple(map(name, value))
    return value


def _is_extras(value, ids) -> bool:
    """Whether a 10th element is this suite's extras dict (not another tool's per-dialogue dict or list)."""
    if not isinstance(value, dict):
        return False
    keys = set(value)
    return value.get("format") == "mser-erc" or not keys or (bool(keys & set(EXTRAS_KEYS)) and not keys & set(ids))


def _one_hot_speakers(speakers, source: str) -> dict:
    """DialogueRNN's MELD speakers (one-hot vectors per utterance) as names ``P0``, ``P1``, … (the hot index)."""
    if not isinstance(speakers, dict):
        raise DataFormatError(source, f"must be a dict keyed by dialogue id, got {type(speakers).__name__}",
                              field="videoSpeakers")
    named = {}
    for did, rows in speakers.items():
        if not isinstance(rows, (list, tuple, np.ndarray)):
            raise DataFormatError(source, f"must be a per-utterance list, got {type(rows).__name__}",
                                  dialogue=str(did), field="videoSpeakers")
        names = []
        for i, row in enumerate(rows):
            if isinstance(row, str):
                names.append(row)
                continue
            try:
                vec = np.asarray(row, dtype=np.float64)
            except (ValueError, TypeError):
                vec = np.empty(0)
            if vec.ndim != 1 or vec.size == 0 or not np.isfinite(vec).all() or np.count_nonzero(vec) != 1:
                raise DataFormatError(source, f"utterance {i}: speaker must be a name or a one-hot vector, got "
                                              f"{brief(row)}", dialogue=str(did), field="videoSpeakers")
            names.append(f"P{int(np.argmax(vec))}")
        named[did] = names
    return named


# --------------------------------------------------------------------------------------------------- reading

def read_corpus(path, *, label_names: Sequence[str] | None = None, limits: Limits | None = None) -> Corpus:
    """Read and validate a pickle in one of :data:`LAYOUTS`. Nothing in the file is executed.

    ``label_names``: what label ids 0, 1, … mean, overriding the file's own names (see :func:`corpus_from_tuple`).
    ``limits``: what the file may cost (default ``Limits.from_env()``: the defaults of
    :class:`~data_utils.safe_pickle.Limits`, or ``MSER_LOAD_LIMITS='name=value,...'``).
    Raises ``FileNotFoundError`` (no such file, or a directory), :class:`UnsafePickleError` (the pickle asks to run
    code, or for more than ``limits``) or :class:`DataFormatError` (anything else, naming the file, dialogue and
    field).
    """
    path = Path(path)
    source = str(path)
    limits = Limits.from_env() if limits is None else limits
    data = read_input(path, "data file", limits,
                      missing="for the built-in data pass 'synthetic'", expected="a .pkl file")
    return corpus_from_bytes(data, source=source, label_names=label_names, limits=limits)


def read_input(path: Path, what: str, limits: Limits, *, missing: str, expected: str) -> bytes:
    """The bytes of an input file, refused before reading when it is larger than ``limits.file_bytes``. Raises
    ``FileNotFoundError`` (no such file, or a directory; ``missing`` and ``expected`` say what to give instead) and
    :class:`DataFormatError` for anything else the system refuses (a name too long, no permission, not a regular
    file), each in one line naming the file."""
    source = str(path)
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"{source}: no such {what} ({missing})") from None
    except OSError as e:
        raise DataFormatError(source, f"cannot be read: {e.strerror or type(e).__name__}") from None
    if stat.S_ISDIR(info.st_mode):
        raise FileNotFoundError(f"{source}: is a directory, not a {what} (give the path of {expected})")
    if not stat.S_ISREG(info.st_mode):
        raise DataFormatError(source, f"is not a regular file (a device, a pipe or a socket); give the path of "
                                      f"{expected}")
    if info.st_size > limits.file_bytes:
        raise DataFormatError(source, limits.exceeded("file_bytes", f"a file of {info.st_size:,} bytes"))
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataFormatError(source, f"cannot be read: {e.strerror or type(e).__name__}") from None
    except MemoryError:
        raise DataFormatError(source, f"ran out of memory reading {info.st_size:,} bytes") from None


def corpus_from_bytes(data: bytes, *, source: str, label_names: Sequence[str] | None = None,
                      limits: Limits | None = None) -> Corpus:
    """:func:`read_corpus` for the bytes of a file; ``source`` names it in errors."""
    limits = Limits.from_env() if limits is None else limits
    try:
        obj = safe_loads(data, source=source, limits=limits)
    except DamagedPickleError as e:
        raise DataFormatError(source, f"not a readable pickle: {e.problem}") from None
    try:
        return corpus_from_tuple(obj, source=source, label_names=label_names, limits=limits)
    except MemoryError:
        raise DataFormatError(source, f"ran out of memory validating the {len(data):,}-byte file's features (free "
                              "memory, or lower the limits with MSER_LOAD_LIMITS)") from None
    except RecursionError:  # no container of the result is nested deeper than limits.depth: our bug, said in a line
        raise DataFormatError(source, "a value is nested too deeply to validate (RecursionError)") from None


def _short(e: BaseException, limit: int = 200) -> str:
    """``e``'s message on one line, shortened; its type's name where it has none (``MemoryError()``)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + " …"


def corpus_from_tuple(obj, *, source: str, label_names: Sequence[str] | None = None,
                      limits: Limits | None = None) -> Corpus:
    """Validate a tuple in one of :data:`LAYOUTS` into a :class:`Corpus`.

    ``label_names`` names the label ids (id i is ``label_names[i]``); it overrides the file's ``extras.label_names``
    and the layout's default (IEMOCAP6 for Poria's layout, MELD's seven emotions for DialogueRNN's MELD layout).
    ``limits`` bounds the number of dialogues and utterances (default ``Limits.from_env()``).
    Raises :class:`DataFormatError` naming the file, dialogue and field of the first problem.
    """
    limits = Limits.from_env() if limits is None else limits
    layout, named, extras = _identify_layout(obj, source)
    guessed = label_names is None and "label_names" not in extras
    if label_names is not None:
        label_names, where = tuple(label_names), "label_names"
    elif "label_names" in extras:
        label_names, where = extras["label_names"], "extras.label_names"
        if not isinstance(label_names, (list, tuple)):
            raise DataFormatError(source, f"must be a list of label names (id order), got a "
                                          f"{type(label_names).__name__}", field=where)
        label_names = tuple(label_names)
    else:
        label_names, where = LAYOUTS[layout].label_names, "label_names"
    if not label_names or not all(isinstance(n, str) for n in label_names) or len(set(label_names)) != len(label_names):
        raise DataFormatError(source, f"must be distinct strings, got {brief(label_names)}", field=where)
    for name in label_names:
        _check_visible(source, name, "label name", field=where)
    unknown_keys = sorted(str(k) for k in set(extras) - set(EXTRAS_KEYS))
    if unknown_keys:
        raise DataFormatError(source, f"unknown key(s) {', '.join(unknown_keys)}; the extras dict knows "
                                      f"{', '.join(EXTRAS_KEYS)}", field="extras")
    if layout == "poria+trailing":
        warnings.warn(f"{source}: the 10th element (a {type(obj[9]).__name__}) is not this suite's extras dict and is "
                      "not read", DataWarning, stacklevel=2)
    for name in FIELDS[:7]:
        if not isinstance(named[name], dict):
            raise DataFormatError(source, f"must be a dict keyed by dialogue id, got {type(named[name]).__name__}",
                                  field=name)
    ids = named["videoIDs"]
    if not ids:
        raise DataFormatError(source, "holds no dialogues", field="videoIDs")
    if len(ids) > limits.dialogues:
        raise DataFormatError(source, limits.exceeded("dialogues", f"{len(ids):,} dialogues"), field="videoIDs")
    utterances = sum(len(v) if isinstance(v, (list, tuple)) else 0 for v in ids.values())
    if utterances > limits.utterances:
        raise DataFormatError(source, limits.exceeded("utterances", f"{utterances:,} utterances"), field="videoIDs")
    for did in ids:
        if not isinstance(did, str):
            raise DataFormatError(source, f"dialogue ids must be strings, got {brief(did)}", field="videoIDs")
        _check_visible(source, did, "dialogue id", field="videoIDs")
    present = [m for m in MODALITIES if named[MODALITY_FIELD[m]]]
    if not present:
        raise DataFormatError(source, "no modality has features (videoText, videoAudio and videoVisual are empty)")
    keyed = ["videoSpeakers", "videoLabels", "videoSentence"] + [MODALITY_FIELD[m] for m in present]
    for name in keyed:
        missing, extra = sorted(set(ids) - set(named[name])), sorted(set(named[name]) - set(ids))
        if missing:
            raise DataFormatError(source, f"has no entry for this dialogue, which videoIDs lists",
                                  dialogue=missing[0], field=name)
        if extra:
            raise DataFormatError(source, "has an entry for this dialogue, which videoIDs does not list",
                                  dialogue=extra[0], field=name)

    widths: dict[str, tuple[int, str]] = {}
    dialogues = {}
    owner: dict[str, str] = {}
    for did in sorted(ids):
        dialogues[did] = _read_dialogue(source, did, named, present, label_names, widths)
        for uid in dialogues[did].utterance_ids:
            if uid in owner:
                also = "twice in this dialogue" if owner[uid] == did else f"also in dialogue {owner[uid]!r}"
                raise DataFormatError(source, f"utterance id {uid!r} is not unique ({also}); audio features are "
                                              "merged by utterance id", dialogue=did, field="videoIDs")
            owner[uid] = did

    splits = {
        "train": _id_list(source, named["trainVid"], "trainVid"),
        "test": _id_list(source, named["testVid"], "testVid"),
        "valid": _id_list(source, extras.get("validVid", ()), "extras.validVid"),
    }
    for split_field, split in (("trainVid", "train"), ("testVid", "test")):
        if not splits[split]:
            raise DataFormatError(source, f"lists no dialogues; every experiment needs at least one {split} dialogue",
                                  field=split_field)
    overlap = sorted(set(splits["train"]) & set(splits["test"]))
    if overlap:
        raise DataFormatError(source, "is in both trainVid and testVid", dialogue=overlap[0], field="testVid")
    stray = sorted(set(splits["valid"]) - set(splits["train"]))
    if stray:
        raise DataFormatError(source, "validation dialogues must be part of trainVid", dialogue=stray[0],
                              field="extras.validVid")
    if splits["valid"] and set(splits["valid"]) >= set(splits["train"]):
        raise DataFormatError(source, f"lists all {len(splits['train'])} training dialogues, which leaves none to "
                                      "train on; list a part of trainVid", field="extras.validVid")
    for split_field, split_ids in (("trainVid", splits["train"]), ("testVid", splits["test"])):
        unknown = sorted(set(split_ids) - set(ids))
        if unknown:
            raise DataFormatError(source, "is not in videoIDs", dialogue=unknown[0], field=split_field)
    unassigned = sorted(set(ids) - set(splits["train"]) - set(splits["test"]))
    if unassigned:
        raise DataFormatError(source, "is in neither trainVid nor testVid", dialogue=unassigned[0],
                              field="trainVid")
    sessions = extras.get("sessions", {})
    if not isinstance(sessions, dict):
        raise DataFormatError(source, f"must be a dict of dialogue id -> session, got {type(sessions).__name__}",
                              field="extras.sessions")
    for did, session in sessions.items():
        if did not in ids:
            raise DataFormatError(source, "is not in videoIDs", dialogue=str(did), field="extras.sessions")
        if not isinstance(session, str) or not session:
            raise DataFormatError(source, f"session must be a non-empty string, got {brief(session)}", dialogue=did,
                                  field="extras.sessions")
        _check_visible(source, session, "session", dialogue=did, field="extras.sessions")
    if guessed and layout.startswith("poria") and isinstance(named["videoIDs"], dict) and \
            named["videoIDs"] and not any(session_from_id(str(d)) for d in named["videoIDs"]):
        warnings.warn(f"{source}: the file does not name its labels and its dialogue ids are not IEMOCAP's, yet its "
                      f"label ids are read as IEMOCAP's ({', '.join(IEMOCAP6)}); if they mean something else, "
                      f"{NAME_LABELS_HINT}", DataWarning, stacklevel=2)

    valid = set(splits["valid"])
    return Corpus(
        dialogues=dialogues,
        splits={"train": tuple(d for d in splits["train"] if d not in valid), "valid": splits["valid"],
                "test": splits["test"]},
        label_names=label_names,
        synthetic=bool(extras.get("synthetic", False)),
        source=source,
        description=str(extras.get("description", "")),
        modalities=tuple(present),
        sessions=dict(sessions),
    )


def _id_list(source, value, name) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise DataFormatError(source, f"must be a list or set of dialogue ids, got {type(value).__name__}",
                              field=name)
    for v in value:
        if not isinstance(v, str):
            raise DataFormatError(source, f"dialogue ids must be strings, got {brief(v)}", field=name)
        _check_visible(source, v, "dialogue id", field=name)
    if len(set(value)) != len(value):
        dup = min(v for v, n in Counter(value).items() if n > 1)
        raise DataFormatError(source, "is listed twice", dialogue=dup, field=name)
    return tuple(sorted(value))


def _check_visible(source, text: str, what: str, *, dialogue: str | None = None, field: str | None = None) -> None:
    """Refuse ``text`` (an id, a speaker, a label name) holding a character one cannot see (:func:`invisible_character`)."""
    found = invisible_character(text)
    if found:
        raise DataFormatError(source, f"the {what} {text!r} holds an invisible character, {found}; two names that look "
                                      "the same would count as two: remove it", dialogue=dialogue, field=field)


def _read_dialogue(source, did, named, present, label_names, widths) -> Dialogue:
    def err(problem, fld):
        return DataFormatError(source, problem, dialogue=did, field=fld)

    utt_ids = named["videoIDs"][did]
    if not isinstance(utt_ids, (list, tuple)):
        raise err(f"must be a list of utterance ids, got {type(utt_ids).__name__}", "videoIDs")
    n = len(utt_ids)
    if n == 0:
        raise err("the dialogue has no utterances", "videoIDs")

    def seq(name):
        value = named[name][did]
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise err(f"must be a per-utterance list, got {type(value).__name__}", name)
        if len(value) != n:
            raise err(f"has {len(value)} entries but videoIDs lists {n} utterances", name)
        return value

    speakers = tuple(seq("videoSpeakers"))
    for i, s in enumerate(speakers):
        if not isinstance(s, str) or not s:
            raise err(f"utterance {i}: speaker must be a non-empty string, got {brief(s)}", "videoSpeakers")
        if not s.isprintable():
            _check_visible(source, s, f"speaker of utterance {i}", dialogue=did, field="videoSpeakers")
    labels = []
    for i, lab in enumerate(seq("videoLabels")):
        if isinstance(lab, (bool, np.bool_)) or not isinstance(lab, (int, np.integer)):
            raise err(f"utterance {i}: label must be an integer id, got {brief(lab)}", "videoLabels")
        if not 0 <= int(lab) < len(label_names):
            raise err(f"utterance {i}: label id {int(lab)} is out of range 0..{len(label_names) - 1} "
                      f"({', '.join(label_names)}); if the file uses another label set, {NAME_LABELS_HINT}",
                      "videoLabels")
        labels.append(label_names[int(lab)])
    sentences = []
    for i, text in enumerate(seq("videoSentence")):
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as e:
                raise err(f"utterance {i}: the sentence is bytes that are not UTF-8 ({e.reason} at byte {e.start})",
                          "videoSentence") from None
        elif not isinstance(text, str):
            raise err(f"utterance {i}: the sentence must be text, got {type(text).__name__}", "videoSentence")
        sentences.append(text)

    features = {}
    for m in present:
        name = MODALITY_FIELD[m]
        rows = seq(name)
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():  # reported below, not as numpy warnings
                warnings.simplefilter("error", np.exceptions.ComplexWarning)
                arr = np.asarray(rows, dtype=np.float64) if not isinstance(rows, np.ndarray) else rows
        except np.exceptions.ComplexWarning:
            raise err("utterance features must be real numbers, got complex values", name) from None
        except (ValueError, TypeError, OverflowError) as e:
            raise err(f"utterance features must be numeric vectors of one width ({_first_bad_row(rows, utt_ids, e)})",
                      name) from None
        if arr.dtype.kind == "c":
            raise err("utterance features must be real numbers, got complex values", name)
        if arr.dtype.kind not in "fiu" or arr.ndim != 2:
            raise err(f"utterance features must be numeric vectors of one width, got an array of shape "
                      f"{arr.shape} and dtype {arr.dtype}", name)
        if m in widths and arr.shape[1] != widths[m][0]:
            raise err(f"feature width {arr.shape[1]} differs from width {widths[m][0]} of dialogue "
                      f"{widths[m][1]!r}", name)
        widths.setdefault(m, (arr.shape[1], did))
        bad = ~np.isfinite(arr)
        if bad.any():
            i, j = map(int, np.argwhere(bad)[0])
            raise err(f"utterance {i} ({utt_ids[i]}): non-finite value {arr[i, j]} at dimension {j}", name)
        with np.errstate(over="ignore"):
            features[m] = np.ascontiguousarray(arr, dtype=np.float32)
        bad = ~np.isfinite(features[m])
        if bad.any():
            i, j = map(int, np.argwhere(bad)[0])
            raise err(f"utterance {i} ({utt_ids[i]}): value {arr[i, j]} at dimension {j} is beyond float32's range "
                      f"(±{float(np.finfo(np.float32).max):.3g}), which models compute in; rescale the features",
                      name)
    utterance_ids = tuple(str(u) for u in utt_ids)
    for i, uid in enumerate(utterance_ids):
        if not uid.isprintable():
            _check_visible(source, uid, f"utterance id {i}", dialogue=did, field="videoIDs")
    return Dialogue(id=did, utterance_ids=utterance_ids, speakers=speakers, labels=tuple(labels),
                    sentences=tuple(sentences), features=features)


def _first_bad_row(rows, utt_ids, error: Exception) -> str:
    """Which utterance of ``rows`` (a dialogue's feature rows) numpy could not read as one numeric matrix, in words;
    numpy's own message, shortened, where no single row is to blame."""
    try:
        rows = list(rows)
    except TypeError:
        return f"got {type(rows).__name__}"
    first = None
    for i, row in enumerate(rows):
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                vector = np.asarray(row, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            return f"utterance {i} ({_utt(utt_ids, i)}) is a {type(row).__name__}, not a vector of numbers"
        if vector.ndim == 0:
            return f"utterance {i} ({_utt(utt_ids, i)}) is a single {type(row).__name__}, not a vector"
        if vector.ndim != 1:
            return f"utterance {i} ({_utt(utt_ids, i)}) is an array of shape {vector.shape}, not a vector"
        if first is None:
            first = len(vector)
        elif len(vector) != first:
            return f"utterance {i} ({_utt(utt_ids, i)}) has {len(vector)} values, utterance 0 has {first}"
    return _short(error, 160)


def _utt(utt_ids, i: int) -> str:
    return str(utt_ids[i]) if i < len(utt_ids) else "no id: the dialogue lists fewer utterances"


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


# --------------------------------------------------------------------------------------------------- writing

def corpus_to_tuple(corpus: Corpus) -> tuple:
    """The pickle layout of ``corpus`` (labels as indices into ``corpus.label_names``)."""
    index = {n: i for i, n in enumerate(corpus.label_names)}
    d = corpus.dialogues
    modality = {m: ({k: [row for row in v.features[m]] for k, v in d.items()} if m in corpus.modalities else {})
                for m in MODALITIES}
    extras = {
        "format": "mser-erc",
        "version": FORMAT_VERSION,
        "label_names": list(corpus.label_names),
        "validVid": list(corpus.splits.get("valid", ())),
        "synthetic": bool(corpus.synthetic),
        "description": corpus.description,
    }
    if corpus.sessions:
        extras["sessions"] = dict(corpus.sessions)
    return (
        {k: list(v.utterance_ids) for k, v in d.items()},
        {k: list(v.speakers) for k, v in d.items()},
        {k: [index[lab] for lab in v.labels] for k, v in d.items()},
        modality["text"], modality["audio"], modality["visual"],
        {k: list(v.sentences) for k, v in d.items()},
        sorted(set(corpus.splits.get("train", ())) | set(corpus.splits.get("valid", ()))),
        sorted(corpus.splits.get("test", ())),
        extras,
    )


def corpus_to_bytes(corpus: Corpus) -> bytes:
    return pickle.dumps(corpus_to_tuple(corpus), protocol=4)


def write_corpus(corpus: Corpus, path, *, overwrite: bool = False) -> Path:
    """Write ``corpus`` atomically in the pickle layout; refuses to overwrite unless asked."""
    data = corpus_to_bytes(corpus)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def describe_widths(corpus: Corpus) -> dict[str, int]:
    first = next(iter(corpus.dialogues.values()))
    return {m: int(first.features[m].shape[1]) for m in corpus.modalities}
