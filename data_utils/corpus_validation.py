"""Validation of a tuple in one of :data:`~data_utils.corpus_layouts.LAYOUTS` into a :class:`Corpus`: every field,
every dialogue, the splits and sessions, each error naming the file, the dialogue and the field. Part of
:mod:`data_utils.corpus`."""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from typing import Sequence

import numpy as np

from .corpus_layouts import EXTRAS_KEYS, LAYOUTS, identify_layout
from .corpus_types import (FIELDS, MODALITIES, MODALITY_FIELD, NAME_LABELS_HINT, Corpus, DataFormatError, DataWarning,
                           Dialogue, _check_visible, brief, session_from_id)
from .labels import IEMOCAP6
from .pickle_limits import Limits


def corpus_from_tuple(obj, *, source: str, label_names: Sequence[str] | None = None,
                      limits: Limits | None = None) -> Corpus:
    """Validate a tuple in one of :data:`LAYOUTS` into a :class:`Corpus` (:func:`read_tuple` without the layout)."""
    return read_tuple(obj, source=source, label_names=label_names, limits=limits)[0]


def read_tuple(obj, *, source: str, label_names: Sequence[str] | None = None,
               limits: Limits | None = None) -> tuple[Corpus, str]:
    """Validate a tuple in one of :data:`LAYOUTS` into a :class:`Corpus`; also the name of the layout it was.

    ``label_names`` names the label ids (id i is ``label_names[i]``); it overrides the file's ``extras.label_names``
    and the layout's default (IEMOCAP6 for Poria's layout, MELD's seven emotions for DialogueRNN's MELD layout).
    ``limits`` bounds the number of dialogues and utterances (default ``Limits.from_env()``).
    Raises :class:`DataFormatError` naming the file, dialogue and field of the first problem.
    """
    limits = Limits.from_env() if limits is None else limits
    layout, named, extras = identify_layout(obj, source)
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
            raise DataFormatError(source, "has no entry for this dialogue, which videoIDs lists",
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

    extractors = _read_extractors(source, extras.get("extractors", {}), present)
    valid = set(splits["valid"])
    corpus = Corpus(
        dialogues=dialogues,
        splits={"train": tuple(d for d in splits["train"] if d not in valid), "valid": splits["valid"],
                "test": splits["test"]},
        label_names=label_names,
        synthetic=bool(extras.get("synthetic", False)),
        source=source,
        description=str(extras.get("description", "")),
        modalities=tuple(present),
        sessions=dict(sessions),
        extractors=extractors,
        metric=_read_metric(source, extras.get("metric", "")),
        corpus=_read_name(source, extras.get("corpus", ""), "extras.corpus"),
    )
    return corpus, layout


def _read_name(source: str, value, field: str) -> str:
    """A short visible name (``extras.corpus``), '' when absent."""
    if not isinstance(value, str) or len(value) > 100:
        raise DataFormatError(source, f"must be a name of at most 100 characters, got {brief(value)}", field=field)
    _check_visible(source, value, "name", field=field)
    return value


_METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


def _read_metric(source: str, value) -> str:
    """``extras.metric``: the name of the metric the corpus is judged by ('' when absent); which names exist is the
    runner's to check (model_utils.metrics), so a file can be read without it."""
    if value == "":
        return ""
    if not isinstance(value, str) or not _METRIC_NAME.fullmatch(value):
        raise DataFormatError(source, f"must be a metric's name such as 'weighted_f1', got {brief(value)}",
                              field="extras.metric")
    return value


MAX_EXTRACTOR_PATH = 4096  # characters of extras.extractors.<modality>.path
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _read_extractors(source: str, value, present: Sequence[str]) -> dict[str, dict[str, str]]:
    """``extras.extractors``: modality -> ``{"path": ..., "sha256": ...}`` of its saved extractor's JSON, the path
    relative to the file's folder (or absolute); returned with the path resolved against that folder. Every
    problem is one :class:`DataFormatError` naming the file and the field."""
    if not isinstance(value, dict):
        raise DataFormatError(source, f"must be a dict of modality -> {{'path', 'sha256'}}, got a "
                                      f"{type(value).__name__}", field="extras.extractors")
    folder = os.path.dirname(os.path.abspath(source))
    found = {}
    for modality, record in value.items():
        where = f"extras.extractors.{modality}" if isinstance(modality, str) and modality.isidentifier() else \
            "extras.extractors"
        if modality not in present:
            raise DataFormatError(source, f"names modality {brief(modality)}, which the file has no features of "
                                          f"(it has {', '.join(present)})", field=where)
        if not isinstance(record, dict) or set(record) != {"path", "sha256"}:
            raise DataFormatError(source, f"must be a dict with exactly the keys 'path' and 'sha256', got "
                                          f"{brief(record)}", field=where)
        path, digest = record["path"], record["sha256"]
        if not isinstance(path, str) or not 0 < len(path) <= MAX_EXTRACTOR_PATH:
            raise DataFormatError(source, f"must be a path of 1 to {MAX_EXTRACTOR_PATH} characters, got "
                                          f"{brief(path)}", field=f"{where}.path")
        _check_visible(source, path, "extractor path", field=f"{where}.path")
        if not path.isprintable():  # a newline or tab, which _check_visible lets through as whitespace
            raise DataFormatError(source, f"the path {brief(path)} holds a control character", field=f"{where}.path")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise DataFormatError(source, f"must be a SHA-256 in 64 lowercase hex digits, got {brief(digest)}",
                                  field=f"{where}.sha256")
        found[modality] = {"path": os.path.normpath(os.path.join(folder, path)), "sha256": digest}
    return found


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


def _short(e: BaseException, limit: int = 200) -> str:
    """``e``'s message on one line, shortened; its type's name where it has none (``MemoryError()``)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + " …"
