"""The on-disk layout: Poria et al.'s IEMOCAP pickle, read safely and validated, and written back.

The file is a tuple ``(videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, videoSentence,
trainVid, testVid)``: seven dicts keyed by dialogue id, holding per-utterance lists, then the training and test
dialogue ids. Labels are indices into ``IEMOCAP6`` (hap, sad, neu, ang, exc, fru).

Files this suite writes (synthetic data, features built from your transcripts or audio) add a tenth element, a
dict of extras: ``validVid`` (held-out part of ``trainVid``), ``label_names`` (what the label indices mean),
``sessions`` (dialogue id -> recording session, for corpora whose ids do not say it), ``synthetic``,
``description`` and ``extractors`` (modality -> ``{"path", "sha256"}`` of the saved extractor that made its
features, the path relative to the file: :mod:`data_utils.extractors`). A modality dict left empty means the
modality is absent.

Sessions (for leave-one-session-out cross-validation): ``extras.sessions`` where given, else IEMOCAP's ``SesNN``
prefix of the dialogue id (``Ses01F_impro01`` -> ``Ses01``), else none.

Everything is validated on load, and every error names the file, the dialogue and the field. What a file may cost
is bounded (:class:`~data_utils.safe_pickle.Limits`: its size, arrays, containers, nesting, dialogues, utterances;
``read_corpus(path, limits=Limits(...))`` or ``MSER_LOAD_LIMITS`` raise them), and every check is linear in the
size of the file.

The pieces: :mod:`data_utils.corpus_types` (the corpus in memory, field names, errors), :mod:`data_utils.corpus_layouts`
(the layouts and which one a file is), :mod:`data_utils.corpus_validation` (every field checked); reading and writing
files is here.
"""
from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path
from typing import Sequence

from .corpus_layouts import EXTRAS_KEYS, LAYOUTS, MELD7, Layout
from .corpus_sentiment import FILES_HINT, SENTIMENT2, SENTIMENT3, contents, input_files, is_sentiment_tuple, \
    merge, read_modality_file
from .corpus_sentiment import LAYOUTS as SENTIMENT_LAYOUTS
from .corpus_types import (FIELDS, FORMAT_VERSION, MODALITIES, MODALITY_FIELD, NAME_LABELS_HINT, SPLITS, Corpus,
                           DataFormatError, DataWarning, Dialogue, brief, invisible_character, session_from_id)
from .corpus_validation import corpus_from_tuple, read_tuple
from .fileio import atomic_path
from .notes import note
from .safe_pickle import DamagedPickleError, Limits, UnsafePickleError, safe_loads

__all__ = ["EXTRAS_KEYS", "FIELDS", "FORMAT_VERSION", "LAYOUTS", "MELD7", "MODALITIES", "MODALITY_FIELD",
           "NAME_LABELS_HINT", "SPLITS", "Corpus", "DataFormatError", "DataWarning", "Dialogue", "Layout",
           "UnsafePickleError", "brief", "corpus_from_bytes", "corpus_from_tuple", "corpus_to_bytes",
           "corpus_to_tuple", "describe_widths", "invisible_character", "read_corpus", "read_input",
           "session_from_id", "write_corpus"]


# --------------------------------------------------------------------------------------------------- reading

def read_corpus(path, *, label_names: Sequence[str] | None = None, limits: Limits | None = None) -> Corpus:
    """Read and validate a pickle in one of :data:`LAYOUTS`, or Poria et al.'s CMU-MOSI / CMU-MOSEI modality
    pickles (:mod:`data_utils.corpus_sentiment`): one file, a folder of them, or a glob. Nothing in a file is
    executed. Which layout was read is said once (:func:`data_utils.notes.note`).

    ``label_names``: what label ids 0, 1, … mean, overriding the file's own names (see :func:`corpus_from_tuple`;
    not for CMU-MOSI / MOSEI files, whose labels the reader names).
    ``limits``: what each file may cost (default ``Limits.from_env()``: the defaults of
    :class:`~data_utils.safe_pickle.Limits`, or ``MSER_LOAD_LIMITS='name=value,...'``).
    Raises ``FileNotFoundError`` (no such file; a folder without modality pickles; a glob matching nothing),
    :class:`UnsafePickleError` (the pickle asks to run code, or for more than ``limits``) or
    :class:`DataFormatError` (anything else, naming the file, dialogue and field).
    """
    limits = Limits.from_env() if limits is None else limits
    files = input_files(path)
    objs = [_load(read_input(f, "data file", limits, missing="for the built-in data pass 'synthetic'",
                             expected="a .pkl file"), str(f), limits) for f in files]
    several = len(files) > 1 or Path(path).is_dir()  # a folder or glob of modality files, named as given
    if not several and not is_sentiment_tuple(objs[0]):
        source = str(files[0])
        corpus, layout = _validated(objs[0], source, label_names, limits)
        note(f"{source}: read as {LAYOUTS[layout].description}")
        return corpus
    source = str(path) if several else str(files[0])
    if label_names is not None:
        raise DataFormatError(source, f"CMU-MOSI / MOSEI files name their own labels ({', '.join(SENTIMENT2)}, or "
                                      f"{', '.join(SENTIMENT3)}); label names are for Poria's 9-tuple")
    parts = []
    for f, obj in zip(files, objs):
        if not is_sentiment_tuple(obj):
            raise DataFormatError(str(f), f"is not a CMU-MOSI / MOSEI modality tuple; a folder, or a glob of several "
                                          f"files, may hold only those ({FILES_HINT})")
        parts.append(read_modality_file(obj, str(f)))
    corpus, _ = _validated(merge(parts), source, None, limits)
    note(f"{source}: read as {SENTIMENT_LAYOUTS[parts[0].layout].description}, {parts[0].task}-way sentiment: "
         f"{contents(parts)}")
    return corpus


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
    """:func:`read_corpus` for the bytes of a file in one of :data:`LAYOUTS`; ``source`` names it in errors."""
    limits = Limits.from_env() if limits is None else limits
    return _validated(_load(data, source, limits), source, label_names, limits)[0]


def _load(data: bytes, source: str, limits: Limits):
    """The object pickled in ``data``, read safely (:func:`~data_utils.safe_pickle.safe_loads`)."""
    try:
        return safe_loads(data, source=source, limits=limits)
    except DamagedPickleError as e:
        raise DataFormatError(source, f"not a readable pickle: {e.problem}") from None


def _validated(obj, source: str, label_names, limits: Limits) -> tuple[Corpus, str]:
    """:func:`read_tuple` with memory and recursion failures as one-line :class:`DataFormatError`."""
    try:
        return read_tuple(obj, source=source, label_names=label_names, limits=limits)
    except MemoryError:
        raise DataFormatError(source, "ran out of memory validating the file's features (free memory, or lower the "
                                      "limits with MSER_LOAD_LIMITS)") from None
    except RecursionError:  # no container of the result is nested deeper than limits.depth: our bug, said in a line
        raise DataFormatError(source, "a value is nested too deeply to validate (RecursionError)") from None


# --------------------------------------------------------------------------------------------------- writing

def corpus_to_tuple(corpus: Corpus, *, at=None) -> tuple:
    """The pickle layout of ``corpus`` (labels as indices into ``corpus.label_names``).

    ``at``: where the file will be written; the paths of ``corpus.extractors`` are written relative to its folder
    (``extras.extractors``), so the file and its extractors can move together. Without it, as they are."""
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
    if corpus.metric:
        extras["metric"] = corpus.metric
    if corpus.corpus:
        extras["corpus"] = corpus.corpus
    if corpus.extractors:
        extras["extractors"] = {m: {"path": _relative(r["path"], at), "sha256": r["sha256"]}
                                for m, r in sorted(corpus.extractors.items())}
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


def _relative(path: str, at) -> str:
    """``path`` relative to the folder of the file ``at`` (as it is without ``at``, or on another drive)."""
    if at is None:
        return str(path)
    try:
        return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.abspath(at)))
    except ValueError:  # Windows: another drive
        return os.path.abspath(path)


def corpus_to_bytes(corpus: Corpus, *, at=None) -> bytes:
    return pickle.dumps(corpus_to_tuple(corpus, at=at), protocol=4)


def write_corpus(corpus: Corpus, path, *, overwrite: bool = False) -> Path:
    """Write ``corpus`` atomically in the pickle layout; refuses to overwrite unless asked. The paths of its saved
    extractors are written relative to ``path``'s folder."""
    data = corpus_to_bytes(corpus, at=path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def describe_widths(corpus: Corpus) -> dict[str, int]:
    first = next(iter(corpus.dialogues.values()))
    return {m: int(first.features[m].shape[1]) for m in corpus.modalities}
