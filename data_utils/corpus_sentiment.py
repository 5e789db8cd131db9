"""Poria et al.'s CMU-MOSI and CMU-MOSEI pickles: one file per modality and task, read into Poria's layout.

The study's source repository (soujanyaporia/multimodal-sentiment-analysis, ``dataset/{mosi,mosei}/raw/``) holds,
beside the IEMOCAP 9-tuple, one pickle per modality and task: ``text_2way.pickle``, ``audio_3way.pickle``,
``video_2way.pickle`` … (MOSI also ``text.pickle``, ``audio.pickle``, ``video.pickle``), each a tuple of arrays
zero-padded to the longest video, Python 2 pickles as the IEMOCAP file is:

- **CMU-MOSI**, a 7-tuple :data:`MOSI_FIELDS`: ``train_data`` (videos, T, D) float; ``train_label`` (videos, T), 0/1
  for the 2-way task (0 = negative, 1 = positive), 0 at padding; ``test_data``; ``test_label``; ``maxlen`` (T);
  ``train_length`` and ``test_length`` (utterances per video). The real files: 62 training and 31 test videos, T = 63,
  audio 73-wide (openSMILE).
- **CMU-MOSEI**, a 13-tuple :data:`MOSEI_FIELDS`, of which upstream's ``run.py`` reads fields 0, 1, 4, 5, 7 and 9.
  By their shapes the skipped ones are the validation split: field 2 is (videos, T, D) with the training data's T
  and D (``valid_data``), field 3 has that many videos and the labels' shape (``valid_label``), field 8 that many
  lengths (``valid_length``); field 6 is ``maxlen``. Fields 10-12 are not read. When fields 2, 3 and 8 do not fit
  together, the file's validation split is not used (a warning says so) and one is drawn from the training videos.

Labels, read at real utterances only (padding is never a class): a one-hot (videos, T, C) array (C = 2:
``negative, positive``; C = 3 in upstream's column order ``negative, positive, neutral``, as
``createOneHotMosei3way`` writes it); or a (videos, T) array of class ids (0 = negative, 1 = positive, and 2 =
neutral for the 3-way task, upstream's order); or of sentiment scores (any values that are not such ids: upstream's
``createOneHotMosei2way`` / ``…3way`` rule, positive above 0, negative at or below 0 for 2 classes; below 0
negative, 0 neutral for 3). The task is the file name's ``_2way`` / ``_3way``, else what the labels hold (2 for
scores). Label names are ``negative, positive`` (2-way) or ``negative, neutral, positive`` (3-way).

Every video is a dialogue of one party (its speaker is the video), every segment an utterance without a sentence:
ids ``mosi_train_000``, ``mosi_valid_000``, ``mosi_test_000``, utterances ``mosi_train_000_u00``. Several modality
files (a folder, a glob) are merged by position and must agree on videos, lengths and labels. The result is handed
to the validation of Poria's layout (:func:`data_utils.corpus_validation.corpus_from_tuple`), so it is checked as
every other file is.
"""
from __future__ import annotations

import glob
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .corpus_layouts import Layout
from .corpus_types import MODALITIES, DataFormatError, DataWarning, brief
from .notes import note

MOSI_FIELDS = ("train_data", "train_label", "test_data", "test_label", "maxlen", "train_length", "test_length")
MOSEI_FIELDS = ("train_data", "train_label", "valid_data", "valid_label", "test_data", "test_label", "maxlen",
                "train_length", "valid_length", "test_length", "(not read)", "(not read)", "(not read)")
SENTIMENT2 = ("negative", "positive")
SENTIMENT3 = ("negative", "neutral", "positive")
UPSTREAM_ORDER = ("negative", "positive", "neutral")  # what class ids / one-hot columns 0, 1, 2 mean upstream

LAYOUTS = {
    "cmu-mosi": Layout("cmu-mosi", MOSI_FIELDS, SENTIMENT2,
                       "Poria et al.'s CMU-MOSI per-modality 7-tuple (videos as dialogues of one party)"),
    "cmu-mosei": Layout("cmu-mosei", MOSEI_FIELDS, SENTIMENT3,
                        "Poria et al.'s CMU-MOSEI per-modality 13-tuple (videos as dialogues of one party; its own "
                        "validation split)"),
}
CORPUS_NAME = {"cmu-mosi": "CMU-MOSI", "cmu-mosei": "CMU-MOSEI"}
SENTIMENT_CORPORA = tuple(CORPUS_NAME.values())  # their task is sentiment, not emotion (model cards say so)
_ID_PREFIX = {"cmu-mosi": "mosi", "cmu-mosei": "mosei"}
# text_2way.pickle, audio_3way.pickle, video.pickle …: the modality (upstream calls the visual one "video") and task
FILE_NAME = re.compile(r"^(text|audio|video)(?:_([23])way)?\.(?:pickle|pkl)$")
_MODALITY = {"text": "text", "audio": "audio", "video": "visual"}
MAX_FILES = len(MODALITIES)
# A folder of several tasks' files is read for one: the 2-way ones, else MOSI's untasked ones (2-way), else 3-way
FOLDER_TASKS = (2, None, 3)
TASK_WORDS = {2: "2-way (_2way)", None: "untasked (text.pickle …)", 3: "3-way (_3way)"}
FILES_HINT = "text_2way.pickle, audio_2way.pickle, video_2way.pickle (or _3way, or text.pickle …)"


def is_sentiment_tuple(obj) -> bool:
    """Whether ``obj`` is a CMU-MOSI (7) or CMU-MOSEI (13) modality tuple: an array first (then checked field by
    field); Poria's and MELD's layouts are 9- and 10-tuples of dicts."""
    return isinstance(obj, (tuple, list)) and len(obj) in (7, 13) and isinstance(obj[0], np.ndarray)


def input_files(path) -> list[Path]:
    """The files ``path`` names: a folder's modality files (named as :data:`FILE_NAME`; of one task,
    :data:`FOLDER_TASKS`, the others noted), a glob's matches, else ``[path]`` itself (read as one file, whatever its
    layout). Raises ``FileNotFoundError`` for a folder without modality files or a glob that matches nothing, and
    :class:`DataFormatError` for more files than modalities."""
    path = Path(path)
    try:
        folder, exists = path.is_dir(), path.exists()
    except OSError:  # a name too long, no permission: read_input says so for the file
        return [path]
    if folder:
        found = sorted(p for p in path.iterdir() if FILE_NAME.match(p.name) and not p.is_dir())
        if not found:
            raise FileNotFoundError(f"{path}: is a directory, not a data file, and holds no per-modality pickles "
                                    f"({FILES_HINT}); give the path of a .pkl file, or of a folder or glob of such "
                                    "pickles")
        by_task: dict = {}
        for p in found:
            by_task.setdefault(_task_of_name(p.name), []).append(p)
        task = next(t for t in FOLDER_TASKS if t in by_task)
        found = by_task.pop(task)
        if by_task:
            others = ", ".join(p.name for files in by_task.values() for p in files)
            note(f"{path}: reading its {TASK_WORDS[task]} files; it also holds {others}: a glob chooses those "
                 f"(e.g. '{path / '*_3way.pickle'}')")
    elif not exists and glob.has_magic(str(path)):
        found = sorted(Path(p) for p in glob.glob(str(path)) if not Path(p).is_dir())
        if not found:
            raise FileNotFoundError(f"{path}: no file matches this pattern")
    else:
        return [path]
    if len(found) > MAX_FILES:
        raise DataFormatError(str(path), f"names {len(found)} files ({', '.join(p.name for p in found)}); at most one "
                                         "per modality (text, audio, video)")
    return found


def _task_of_name(name: str) -> int | None:
    match = FILE_NAME.match(name)
    return int(match.group(2)) if match and match.group(2) else None


def modality_of(path) -> str:
    """The modality a file holds, by its name (``audio_2way.pickle`` -> ``'audio'``, ``video…`` -> ``'visual'``).
    Raises :class:`DataFormatError` when the name does not say."""
    match = FILE_NAME.match(Path(path).name)
    if not match:
        raise DataFormatError(str(path), "is a CMU-MOSI/MOSEI modality tuple, but its name does not say which "
                                         f"modality it holds; name it as upstream does ({FILES_HINT})")
    return _MODALITY[match.group(1)]


@dataclass(frozen=True)
class ModalityFile:
    """One modality file, read: per split (``train``, ``valid``, ``test``), the (videos, T, D) features, the
    utterances per video and each video's label names (real utterances only)."""

    source: str
    layout: str  # a key of LAYOUTS
    modality: str
    task: int  # 2 or 3
    data: dict[str, np.ndarray]
    lengths: dict[str, list[int]]
    labels: dict[str, list[tuple[str, ...]]]


def read_modality_file(obj, source: str) -> ModalityFile:
    """Check and decode one modality tuple (``obj``, read from ``source``). Raises :class:`DataFormatError` naming
    the file, the video and the field."""
    layout = "cmu-mosi" if len(obj) == 7 else "cmu-mosei"
    named = dict(zip(LAYOUTS[layout].fields, obj))
    prefix = _ID_PREFIX[layout]
    data, lengths = {}, {}
    data["train"], lengths["train"] = _split_arrays(named, "train", source, prefix)
    splits = ["train", "test"]
    if layout == "cmu-mosi":
        _check_maxlen(named["maxlen"], data["train"].shape[1], source)
    elif _valid_fits(named):
        splits.insert(1, "valid")
    else:
        warnings.warn(f"{source}: fields 2, 3 and 8 are not a validation split of the training data's shape "
                      f"({_shape(named['valid_data'])}, {_shape(named['valid_label'])}, "
                      f"{type(named['valid_length']).__name__}); a validation split is drawn from the training "
                      "videos instead", DataWarning, stacklevel=2)
    width = data["train"].shape[2]
    for split in splits[1:]:
        data[split], lengths[split] = _split_arrays(named, split, source, prefix)
        if data[split].shape[2] != width:
            raise DataFormatError(source, f"features are {data[split].shape[2]} wide, train_data's {width}",
                                  field=f"{split}_data")
    real = {split: _real_labels(named[f"{split}_label"], data[split], lengths[split], source, split, prefix)
            for split in splits}
    reading, task = _reading(real, _task_of_name(Path(source).name), source)
    labels = {split: _names(real[split], reading, task, lengths[split], source, split, prefix) for split in splits}
    return ModalityFile(source, layout, modality_of(source), task, data, lengths, labels)


def _check_maxlen(maxlen, padded: int, source: str) -> None:
    """MOSI's ``maxlen``: an integer, the padded length (not read: the arrays' shape is; a mismatch is warned of)."""
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)):
        raise DataFormatError(source, f"must be the padded length, an integer, got {brief(maxlen)}", field="maxlen")
    if maxlen != padded:
        warnings.warn(f"{source}: field maxlen is {int(maxlen)}, but the arrays are padded to {padded} utterances; "
                      "the arrays are read as they are", DataWarning, stacklevel=3)


def _shape(value) -> str:
    return f"shape {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__


def _valid_fits(named) -> bool:
    data, label, length, train = named["valid_data"], named["valid_label"], named["valid_length"], named["train_data"]
    return isinstance(data, np.ndarray) and data.ndim == 3 and data.shape[1:] == train.shape[1:] \
        and isinstance(label, np.ndarray) and label.shape[:2] == data.shape[:2] \
        and isinstance(length, (list, tuple, np.ndarray)) and len(length) == data.shape[0] > 0


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _split_arrays(named, split: str, source: str, prefix: str) -> tuple[np.ndarray, list[int]]:
    """A split's (videos, T, D) features and utterances per video, checked (real utterances finite and within
    float32, which models compute in)."""
    data, length = named[f"{split}_data"], named[f"{split}_length"]
    if not isinstance(data, np.ndarray) or data.ndim != 3 or data.dtype.kind not in "fiu":
        raise DataFormatError(source, f"must be a numeric (videos, utterances, width) array, got {_shape(data)}"
                                      f"{f' of dtype {data.dtype}' if isinstance(data, np.ndarray) else ''}",
                              field=f"{split}_data")
    if data.shape[0] == 0 or data.shape[1] == 0 or data.shape[2] == 0:
        raise DataFormatError(source, f"holds no videos, utterances or features (shape {data.shape})",
                              field=f"{split}_data")
    if isinstance(length, np.ndarray):
        length = length.tolist()
    if not isinstance(length, (list, tuple)):
        raise DataFormatError(source, f"must be a list of utterance counts, got {type(length).__name__}",
                              field=f"{split}_length")
    if len(length) != data.shape[0]:
        raise DataFormatError(source, f"lists {len(length)} videos but {split}_data holds {data.shape[0]}",
                              field=f"{split}_length")
    counts = []
    for i, n in enumerate(length):
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= data.shape[1]:
            raise DataFormatError(source, f"must be an utterance count from 1 to {data.shape[1]} (the padded "
                                          f"length), got {brief(n)}", dialogue=video_id(prefix, split, i),
                                  field=f"{split}_length")
        counts.append(int(n))
    if data.dtype.kind == "f":
        for i, n in enumerate(counts):
            real = data[i, :n]
            bad = ~np.isfinite(real) | (np.abs(real) > _FLOAT32_MAX)
            if bad.any():
                j, k = map(int, np.argwhere(bad)[0])
                problem = "non-finite value" if not np.isfinite(real[j, k]) else "value beyond float32's range"
                raise DataFormatError(source, f"utterance {j}: {problem} {real[j, k]} at dimension {k}",
                                      dialogue=video_id(prefix, split, i), field=f"{split}_data")
    return data, counts


def _real_labels(array, data: np.ndarray, lengths: list[int], source: str, split: str, prefix: str) -> np.ndarray:
    """A split's labels at real utterances, in order: (utterances,) values or (utterances, C) one-hot rows."""
    if not isinstance(array, np.ndarray) or array.ndim not in (2, 3) or array.dtype.kind not in "fiub" \
            or array.shape[:2] != data.shape[:2]:
        raise DataFormatError(source, f"must be a numeric (videos, utterances) array of sentiment labels or scores, "
                                      f"or a one-hot (videos, utterances, classes) one, shaped as {split}_data's "
                                      f"{data.shape[:2]}; got {_shape(array)}", field=f"{split}_label")
    real = np.concatenate([array[i, :n] for i, n in enumerate(lengths)]).astype(np.float64)
    bad = ~np.isfinite(real) if real.ndim == 1 else ~np.isfinite(real).all(axis=1)
    if bad.any():
        i, j = _where(bad, lengths)
        raise DataFormatError(source, f"utterance {j}: label {brief(array[i, j].tolist())} is not finite",
                              dialogue=video_id(prefix, split, i), field=f"{split}_label")
    return real


def _reading(real: dict[str, np.ndarray], hinted: int | None, source: str) -> tuple[str, int]:
    """How the whole file's labels are read, the same in every split: ``('one-hot' | 'ids' | 'scores', task)``."""
    kind = {split: "values" if r.ndim == 1 else f"one-hot rows of {r.shape[1]}" for split, r in real.items()}
    for split in real:
        if kind[split] != kind["train"]:
            raise DataFormatError(source, f"holds {kind[split]}, but train_label {kind['train']}; every split's labels "
                                          "must be of one kind", field=f"{split}_label")
    if real["train"].ndim == 2:
        classes = real["train"].shape[1]
        if classes not in (2, 3) or (hinted and hinted != classes):
            expected = f"{hinted} (the file name's task)" if hinted else "2 or 3"
            raise DataFormatError(source, f"one-hot labels have {classes} columns, expected {expected}",
                                  field="train_label")
        return "one-hot", classes
    values = set(np.unique(np.concatenate(list(real.values()))).tolist())
    as_ids = hinted or (3 if 2.0 in values else 2)
    if values <= set(map(float, range(as_ids))):  # class ids 0 .. task - 1
        return "ids", as_ids
    return "scores", hinted or 2


def _names(real: np.ndarray, reading: str, task: int, lengths: list[int], source: str, split: str,
           prefix: str) -> list[tuple[str, ...]]:
    """Each video's label names under ``reading`` (module docstring)."""
    if reading == "one-hot":
        one_hot = np.isin(real, (0.0, 1.0)).all(axis=1) & (real.sum(axis=1) == 1)
        if not one_hot.all():
            i, j = _where(~one_hot, lengths)
            raise DataFormatError(source, f"utterance {j}: label {brief(real[sum(lengths[:i]) + j].tolist())} is "
                                          "not one-hot", dialogue=video_id(prefix, split, i), field=f"{split}_label")
        ids = real.argmax(axis=1)
    elif reading == "ids":
        ids = real.astype(np.int64)
    elif task == 2:  # sentiment scores: createOneHotMosei2way
        ids = (real > 0).astype(np.int64)
    else:  # createOneHotMosei3way
        ids = np.where(real > 0, 1, np.where(real < 0, 0, 2))
    names = np.array(UPSTREAM_ORDER, dtype=object)[ids]
    out, start = [], 0
    for n in lengths:
        out.append(tuple(names[start:start + n]))
        start += n
    return out


def _where(bad: np.ndarray, lengths: list[int]) -> tuple[int, int]:
    """(video, utterance) of the first True of ``bad``, a flag per real utterance of all videos in order."""
    k = int(np.argmax(bad))
    for i, n in enumerate(lengths):
        if k < n:
            return i, k
        k -= n
    raise AssertionError("no flag set")


def contents(files: list[ModalityFile]) -> str:
    """Which file gave which modality, in words: ``text from text_2way.pickle, audio from audio_2way.pickle``."""
    return ", ".join(f"{f.modality} from {Path(f.source).name}"
                     for f in sorted(files, key=lambda f: MODALITIES.index(f.modality)))


def video_id(prefix: str, split: str, index: int) -> str:
    """A video's dialogue id: ``mosi_train_000``."""
    return f"{prefix}_{split}_{index:03d}"


def merge(files: list[ModalityFile]) -> tuple:
    """The modality files as Poria's 9-tuple plus this suite's extras (``label_names``, ``validVid``,
    ``description``, ``corpus``), ready for :func:`~data_utils.corpus_validation.corpus_from_tuple`. Raises
    :class:`DataFormatError` in one line naming both files where two disagree."""
    files = sorted(files, key=lambda f: MODALITIES.index(f.modality))
    first = files[0]
    seen: dict[str, str] = {}
    for f in files:
        if f.modality in seen:
            raise DataFormatError(f.source, f"holds {f.modality} features, as {seen[f.modality]} does; give one file "
                                            "per modality")
        seen[f.modality] = f.source
        if f.layout != first.layout:
            raise DataFormatError(f.source, f"is a {CORPUS_NAME[f.layout]} file, but {first.source} is "
                                            f"{CORPUS_NAME[first.layout]}; the modality files must be of one corpus")
        if f.task != first.task:
            raise DataFormatError(f.source, f"holds {f.task}-way labels, but {first.source} {first.task}-way ones; "
                                            "the modality files must be of one task")
        if list(f.lengths) != list(first.lengths):
            raise DataFormatError(f.source, f"has the splits {', '.join(f.lengths)}, but {first.source} has "
                                            f"{', '.join(first.lengths)}")
        prefix = _ID_PREFIX[f.layout]
        for split in first.lengths:
            if len(f.lengths[split]) != len(first.lengths[split]):
                raise DataFormatError(f.source, f"holds {len(f.lengths[split])} {split} videos, but {first.source} "
                                                f"holds {len(first.lengths[split])}", field=f"{split}_length")
            for i, (n, m) in enumerate(zip(f.lengths[split], first.lengths[split])):
                if n != m:
                    raise DataFormatError(f.source, f"{n} utterances, but {first.source} has {m}; the modality files "
                                                    "must hold the same videos in the same order",
                                          dialogue=video_id(prefix, split, i), field=f"{split}_length")
            for i, (a, b) in enumerate(zip(f.labels[split], first.labels[split])):
                if a != b:
                    j = next(k for k, (x, y) in enumerate(zip(a, b)) if x != y)
                    raise DataFormatError(f.source, f"utterance {j} is {a[j]}, but {b[j]} in {first.source}",
                                          dialogue=video_id(prefix, split, i), field=f"{split}_label")
    prefix = _ID_PREFIX[first.layout]
    names = SENTIMENT2 if first.task == 2 else SENTIMENT3
    index = {n: i for i, n in enumerate(names)}
    ids, speakers, labels, sentences = {}, {}, {}, {}
    features = {m: {} for m in MODALITIES}
    split_ids: dict[str, list[str]] = {}
    for split, counts in first.lengths.items():
        split_ids[split] = []
        for i, n in enumerate(counts):
            vid = video_id(prefix, split, i)
            split_ids[split].append(vid)
            width = max(2, len(str(n - 1)))
            ids[vid] = [f"{vid}_u{j:0{width}d}" for j in range(n)]
            speakers[vid] = [vid] * n
            labels[vid] = [index[name] for name in first.labels[split][i]]
            sentences[vid] = [""] * n
            for f in files:
                features[f.modality][vid] = f.data[split][i, :n]
    extras = {"label_names": list(names), "validVid": split_ids.get("valid", []), "corpus": CORPUS_NAME[first.layout],
              "description": f"{CORPUS_NAME[first.layout]}, {first.task}-way sentiment: {contents(files)}"}
    return (ids, speakers, labels, features["text"], features["audio"], features["visual"], sentences,
            split_ids["train"] + split_ids.get("valid", []), split_ids["test"], extras)
