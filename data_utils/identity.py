"""What a data file is, for every report: its name, SHA-256, dialogue count, and whether it is Poria et al.'s file.

A report calls data "IEMOCAP (Poria et al.)" only when the file is that file: its git blob SHA-1 (how both public
copies are identified, :data:`data_utils.download.IEMOCAP_BLOB_SHA1`) matches. Any other file at the default path is
"a file at the IEMOCAP path", and built-in data is always called synthetic.
"""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from .download import DEFAULT_PATH, IEMOCAP_BLOB_SHA1, _blob_header

SYNTHETIC_NAME = "SYNTHETIC data (not IEMOCAP)"
# The one warning every page, table, figure and log line built on synthetic data carries.
SYNTHETIC_WARNING = "SYNTHETIC data — not IEMOCAP results"
IEMOCAP_NAME = "IEMOCAP (Poria et al.)"
AT_IEMOCAP_PATH = "a file at the IEMOCAP path (not Poria et al.'s file: its hash differs)"


@functools.lru_cache(maxsize=32)
def _digests(path: str, size: int, mtime: float) -> tuple[str, str]:  # size and mtime: part of the cache key
    sha256, blob = hashlib.sha256(), hashlib.sha1(_blob_header(size))
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha256.update(block)
            blob.update(block)
    return sha256.hexdigest(), blob.hexdigest()


def file_digests(path) -> tuple[str, str]:
    """(SHA-256, git blob SHA-1) of the file ``path``, read once (cached while its size and mtime stay)."""
    path = Path(path)
    stat = path.stat()
    return _digests(str(path.resolve()), stat.st_size, stat.st_mtime)


def _preset(source: str) -> tuple[str, str] | None:
    """(preset, seed) of a built-in data source (``'synthetic (seed 0)'``), None for a file."""
    from .synthetic import parse_source

    return parse_source(source)


def source_files(source: str) -> list[Path]:
    """The files a data ``source`` reads: one file, or a folder's / glob's CMU-MOSI or MOSEI modality files
    (:func:`data_utils.corpus_sentiment.input_files`); none for built-in data or a source that names nothing."""
    from .corpus_sentiment import input_files
    from .corpus_types import DataFormatError

    if _preset(source):
        return []
    try:
        return [p for p in input_files(source) if p.is_file()]
    except (FileNotFoundError, DataFormatError, OSError):
        return []


def data_sha256(source: str) -> str:
    """The SHA-256 of the data file ``source`` (of several files: of their names and SHA-256s, one per line), or
    ``synthetic:<preset>`` for built-in data ('unknown' if the source is no file)."""
    preset = _preset(source)
    if preset:
        return f"synthetic:{preset[0]}" + ("" if preset[1] == "0" else f":seed{preset[1]}")
    return _files_sha256(source_files(source))


def _files_sha256(files: list[Path]) -> str:
    """:func:`data_sha256` of the files a source reads: one file's own, several files' listing of names and
    SHA-256s, 'unknown' for none."""
    if not files:
        return "unknown"
    if len(files) == 1:
        return file_digests(files[0])[0]
    listing = "".join(f"{p.name}\t{file_digests(p)[0]}\n" for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def describe_source(source: str, *, synthetic: bool, dialogues: int, corpus: str = "") -> dict:
    """How reports name the data ``source``: ``{"name", "file", "sha256", "dialogues", "poria"}``.

    ``name`` is :data:`SYNTHETIC_NAME` for synthetic data (built-in, or a file that says it is), :data:`IEMOCAP_NAME`
    only for Poria et al.'s own file (by its hash), :data:`AT_IEMOCAP_PATH` for another file at the default path,
    ``corpus (file)`` for a corpus that names itself (``CMU-MOSI (raw)``), else the file's name. ``sha256``:
    :func:`data_sha256`."""
    path = Path(str(source))
    path = path if path.name else path.resolve()  # '.', '..': the folder's own name
    files = source_files(str(source))
    poria = False
    if len(files) == 1:
        sha256, blob = file_digests(files[0])
        poria = blob == IEMOCAP_BLOB_SHA1
        path = path if path.is_dir() else files[0]  # a folder is named as the folder
    else:
        sha256 = data_sha256(source) if _preset(source) else _files_sha256(files)
    if synthetic:
        name = SYNTHETIC_NAME
    elif poria:
        name = IEMOCAP_NAME
    elif path.name == DEFAULT_PATH.name and path.parent.name == DEFAULT_PATH.parent.name:
        name = AT_IEMOCAP_PATH
    elif corpus:
        name = f"{corpus} ({path.name})"
    else:
        name = path.name
    return {"name": name, "file": path.name, "sha256": sha256, "dialogues": int(dialogues), "poria": poria}
