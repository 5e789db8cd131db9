"""The tuple layouts the reader recognises (:data:`LAYOUTS`: Poria et al.'s IEMOCAP 9-tuple, with this suite's
extras or another tool's 10th element, DialogueRNN's MELD 9-tuple) and which one a file is. Part of
:mod:`data_utils.corpus`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .corpus_types import FIELDS, DataFormatError, brief
from .labels import IEMOCAP6

MELD7 = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
EXTRAS_KEYS = ("format", "version", "label_names", "validVid", "sessions", "synthetic", "description", "extractors",
               "metric", "corpus")


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
                           "Poria et al.'s 9-tuple with this suite's extras dict (validVid, label_names, ...)"),
    "poria+trailing": Layout("poria+trailing", FIELDS + ("(ignored)",), IEMOCAP6,
                             "Poria et al.'s 9-tuple with one more element of another tool's (not read)"),
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


def identify_layout(obj, source: str) -> tuple[str, dict, dict]:
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
                f"({', '.join(meld)}), or a CMU-MOSI / MOSEI modality tuple of padded arrays (7 or 13 elements, "
                f"named text_2way.pickle …); found a {type(obj).__name__} of {n} elements ({_kinds(obj)}). Convert "
                f"the file to Poria's layout (README, 'Your data'), or write a transcripts CSV and use "
                f"`mser features text`")


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
