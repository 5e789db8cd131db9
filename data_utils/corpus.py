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

Everything is validated on load, and every error names the file, the dialogue and the field.
"""
from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from .fileio import atomic_path
from .labels import IEMOCAP6
from .safe_pickle import UnsafePickleError, safe_loads

MODALITIES = ("text", "audio", "visual")
FIELDS = ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual", "videoSentence",
          "trainVid", "testVid")
MODALITY_FIELD = {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"}
SPLITS = ("train", "valid", "test")
FORMAT_VERSION = 1
_SESSION_PREFIX = re.compile(r"^Ses(\d+)")


def session_from_id(dialogue_id: str) -> str:
    """IEMOCAP's session of a dialogue id (``Ses05M_script01_1`` -> ``Ses05``), or '' when the id has none."""
    match = _SESSION_PREFIX.match(dialogue_id)
    return f"Ses{int(match.group(1)):02d}" if match else ""


class DataFormatError(ValueError):
    """The data file does not have the expected layout; the message names file, dialogue and field."""

    def __init__(self, source: str, problem: str, *, dialogue: str | None = None, field: str | None = None):
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


# --------------------------------------------------------------------------------------------------- reading

def read_corpus(path) -> Corpus:
    """Read and validate a pickle in Poria et al.'s layout. Nothing in the file is executed."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such data file (for the built-in data pass 'synthetic')")
    return corpus_from_bytes(path.read_bytes(), source=source)


def corpus_from_bytes(data: bytes, *, source: str) -> Corpus:
    try:
        obj = safe_loads(data, source=source)
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, MemoryError) as e:
        raise DataFormatError(source, f"not a readable pickle ({type(e).__name__}: {e})") from e
    return corpus_from_tuple(obj, source=source)


def corpus_from_tuple(obj, *, source: str) -> Corpus:
    if not isinstance(obj, (tuple, list)) or len(obj) not in (9, 10):
        got = f"a {type(obj).__name__} of length {len(obj)}" if isinstance(obj, (tuple, list)) else \
            f"a {type(obj).__name__}"
        raise DataFormatError(source, f"expected a 9-tuple {FIELDS} (or 10 with an extras dict), got {got}")
    named = dict(zip(FIELDS, obj[:9]))
    extras = obj[9] if len(obj) == 10 else {}
    if not isinstance(extras, dict):
        raise DataFormatError(source, f"must be a dict, got {type(extras).__name__}", field="extras")

    label_names = tuple(extras.get("label_names", IEMOCAP6))
    if not label_names or not all(isinstance(n, str) for n in label_names) or len(set(label_names)) != len(label_names):
        raise DataFormatError(source, f"must be distinct strings, got {label_names!r}", field="extras.label_names")

    for name in FIELDS[:7]:
        if not isinstance(named[name], dict):
            raise DataFormatError(source, f"must be a dict keyed by dialogue id, got {type(named[name]).__name__}",
                                  field=name)
    ids = named["videoIDs"]
    if not ids:
        raise DataFormatError(source, "holds no dialogues", field="videoIDs")
    for did in ids:
        if not isinstance(did, str):
            raise DataFormatError(source, f"dialogue ids must be strings, got {did!r}", field="videoIDs")
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
    for did in sorted(ids):
        dialogues[did] = _read_dialogue(source, did, named, present, label_names, widths)

    splits = {
        "train": _id_list(source, named["trainVid"], "trainVid"),
        "test": _id_list(source, named["testVid"], "testVid"),
        "valid": _id_list(source, extras.get("validVid", ()), "extras.validVid"),
    }
    overlap = sorted(set(splits["train"]) & set(splits["test"]))
    if overlap:
        raise DataFormatError(source, "is in both trainVid and testVid", dialogue=overlap[0], field="testVid")
    stray = sorted(set(splits["valid"]) - set(splits["train"]))
    if stray:
        raise DataFormatError(source, "validation dialogues must be part of trainVid", dialogue=stray[0],
                              field="extras.validVid")
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
            raise DataFormatError(source, f"session must be a non-empty string, got {session!r}", dialogue=did,
                                  field="extras.sessions")
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
            raise DataFormatError(source, f"dialogue ids must be strings, got {v!r}", field=name)
    if len(set(value)) != len(value):
        dup = sorted(v for v in set(value) if list(value).count(v) > 1)[0]
        raise DataFormatError(source, "is listed twice", dialogue=dup, field=name)
    return tuple(sorted(value))


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
            raise err(f"utterance {i}: speaker must be a non-empty string, got {s!r}", "videoSpeakers")
    labels = []
    for i, lab in enumerate(seq("videoLabels")):
        if isinstance(lab, (bool, np.bool_)) or not isinstance(lab, (int, np.integer)):
            raise err(f"utterance {i}: label must be an integer id, got {lab!r}", "videoLabels")
        if not 0 <= int(lab) < len(label_names):
            raise err(f"utterance {i}: label id {int(lab)} is out of range 0..{len(label_names) - 1} "
                      f"({', '.join(label_names)})", "videoLabels")
        labels.append(label_names[int(lab)])
    sentences = tuple(str(s) for s in seq("videoSentence"))

    features = {}
    for m in present:
        name = MODALITY_FIELD[m]
        rows = seq(name)
        try:
            arr = np.asarray(rows, dtype=np.float64) if not isinstance(rows, np.ndarray) else rows
        except (ValueError, TypeError) as e:
            raise err(f"utterance features must be numeric vectors of one width ({e})", name) from e
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
        features[m] = np.ascontiguousarray(arr, dtype=np.float32)
    return Dialogue(id=did, utterance_ids=tuple(str(u) for u in utt_ids), speakers=speakers, labels=tuple(labels),
                    sentences=sentences, features=features)


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
