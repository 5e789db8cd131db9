"""The files of a saved feature extractor, and how they are written, found, checked and read. Nothing here executes
code from a file: JSON is parsed with :mod:`json`, arrays with ``np.load(..., allow_pickle=False)``, and fine-tuned
encoder weights are a safetensors file, which only the worker reads (never a pickle).

For a features file ``feats.pkl`` and a modality ``text``, beside it:

- ``feats.text-extractor.json``: what the extractor is (``format`` ``"mser-extractor"``, ``version``, ``kind``,
  ``modality``, ``dim``, ``settings``, for TF-IDF the ``vocabulary``, ``versions`` of the packages it depends on,
  ``created_by``: the command that wrote it, ``fitted_on``), and ``files``: the name (beside the JSON) and SHA-256 of
  each of the two files below that it uses;
- ``feats.text-extractor.npz``: its fitted arrays (uncompressed ``np.savez``; always holds ``mser_extractor``, the
  format version, so that ``--force`` can tell the suite's own file);
- ``feats.text-extractor.safetensors``: the weights of a fine-tuned sentence encoder.

The features file records the JSON's path (relative to it) and SHA-256 (``extras.extractors``), so a changed
JSON, and through it a changed array or weight file, is refused in one line naming the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import zipfile
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from ._st_worker import SAFETENSORS_METADATA
from .corpus import DataFormatError, read_input
from .fileio import (OutputExistsError, OutputPathError, atomic_path, check_output_path, check_writable, to_json,
                     write_bytes, write_text)
from .safe_pickle import Limits

FORMAT = "mser-extractor"
VERSION = 1
MARKER = "mser_extractor"  # the array every extractor npz holds (the format version)
PARTS = {"json": ".json", "arrays": ".npz", "weights": ".safetensors"}
MAX_ARRAYS = 16
MAX_TEXT = 4096  # characters of a name, a version or the command line in the JSON
_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def extractor_paths(features_path, modality: str) -> dict[str, Path]:
    """The files of the ``modality`` extractor of the features file ``features_path``: part (``json``, ``arrays``,
    ``weights``) -> path beside it, named ``<features stem>.<modality>-extractor.<json|npz|safetensors>``."""
    path = Path(features_path)
    stem = path.stem if path.suffix else path.name
    return {part: path.with_name(f"{stem}.{modality}-extractor{suffix}") for part, suffix in PARTS.items()}


# --------------------------------------------------------------------------------------------------- writing

def check_extractor_outputs(features_path, modality: str, parts: Iterable[str], *, overwrite: bool = False,
                            inputs: Iterable = (), option: str = "--out") -> None:
    """Before any slow work: the extractor files ``parts`` of ``features_path`` can be written. An existing one is
    refused (:class:`OutputExistsError`) unless ``overwrite``, and even then (:class:`OutputPathError`) when it is
    not a regular file this suite wrote as an extractor file, or is one of the command's ``inputs``."""
    inputs = [i for i in inputs if i is not None]
    for part in parts:
        path = extractor_paths(features_path, modality)[part]
        check_output_path(path, overwrite=True, inputs=inputs, option=f"the extractor of {option}")
        if not os.path.lexists(path):
            continue
        if not overwrite:
            raise OutputExistsError(f"{path} (the {modality} extractor of {option} {features_path}) exists; refusing "
                                    "to overwrite it (pass --force)")
        check_writable(path, overwrite=True)
        if not _written_by_us(path, part):
            raise OutputPathError(f"{path} exists and is not an extractor file this suite wrote; --force replaces "
                                  f"only those: move it away, or choose another {option}")


def _written_by_us(path: Path, part: str) -> bool:
    """Whether ``path`` is an extractor file of this suite: JSON of :data:`FORMAT`, an npz holding :data:`MARKER`,
    a safetensors file whose header names the suite."""
    try:
        with path.open("rb") as f:
            if part == "json":
                value = json.loads(f.read(1 << 30))
                return isinstance(value, dict) and value.get("format") == FORMAT
            if part == "arrays":
                return f"{MARKER}.npy" in zipfile.ZipFile(f).namelist()
            size = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(size)) if 0 < size < 1 << 27 else {}
            return isinstance(header, dict) and header.get("__metadata__") == SAFETENSORS_METADATA
    except (OSError, ValueError, zipfile.BadZipFile, RecursionError):
        return False


def write_extractor(features_path, modality: str, meta: Mapping, *, arrays: Mapping[str, np.ndarray] | None = None,
                    weights: bytes | None = None, overwrite: bool = False) -> dict[str, str]:
    """Write an extractor of ``features_path`` atomically, file by file: the ``weights`` (safetensors bytes) and the
    ``arrays`` first, then the JSON (``meta`` with ``format``, ``version``, ``modality`` and ``files`` added), so a
    JSON names only complete files. If one fails, the files written before it are removed.

    Returns ``{"path": the JSON's absolute path, "sha256": its SHA-256}``: what the features file records."""
    paths = extractor_paths(features_path, modality)
    files, written = {}, []
    try:
        if weights is not None:
            write_bytes(paths["weights"], weights, overwrite=overwrite)
            written.append(paths["weights"])
            files["weights"] = {"name": paths["weights"].name, "sha256": sha256_hex(weights)}
        if arrays:
            with atomic_path(paths["arrays"], overwrite=overwrite, suffix=".npz") as tmp:
                np.savez(tmp, **{MARKER: np.array(VERSION)}, **{k: np.asarray(v) for k, v in arrays.items()})
                digest = sha256_hex(tmp.read_bytes())
            written.append(paths["arrays"])
            files["arrays"] = {"name": paths["arrays"].name, "sha256": digest}
        last = {"vocabulary": meta["vocabulary"]} if "vocabulary" in meta else {}  # the long part last
        text = to_json({"format": FORMAT, "version": VERSION, **{k: v for k, v in meta.items() if k not in last},
                        "modality": modality, "files": files, **last}) + "\n"
        write_text(paths["json"], text, overwrite=overwrite)
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return {"path": os.path.abspath(paths["json"]), "sha256": sha256_hex(text.encode("utf-8"))}


def remove_extractor(features_path, modality: str, *, keep: Iterable[str] = ()) -> None:
    """Remove the extractor files of ``features_path`` that this suite wrote, but the parts in ``keep``: all of them
    after the features file could not be written (no extractor is left without its features), or, after ``--force``
    wrote new ones, those of the replaced extractor that the new one does not use."""
    keep = set(keep)
    for part, path in extractor_paths(features_path, modality).items():
        if part not in keep and path.is_file() and not path.is_symlink() and _written_by_us(path, part):
            with contextlib.suppress(OSError):
                path.unlink()


# --------------------------------------------------------------------------------------------------- reading

def read_extractor(path, *, sha256: str | None = None, recorded_in: str | None = None, field: str = "",
                   limits: Limits | None = None) -> tuple[dict, dict[str, np.ndarray], Path | None, str]:
    """Read and check an extractor JSON and the files it names: ``(meta, arrays, weights path or None, the JSON's
    SHA-256)``.

    ``sha256``: what the features file ``recorded_in`` says the JSON's SHA-256 is (its ``field``). The kind-specific
    checks are :mod:`data_utils.extractors`'. Raises ``FileNotFoundError`` (a file is missing) or
    :class:`DataFormatError` naming the file and the field: a SHA-256 that does not match, a malformed JSON or npz,
    an array that would need pickle."""
    path = Path(path)
    limits = Limits.from_env() if limits is None else limits
    data = read_input(path, "extractor file", limits, missing="it is written beside the features file by mser "
                      "features text / audio", expected="an extractor .json file")
    digest = sha256_hex(data)
    if sha256 is not None and digest != sha256:
        raise DataFormatError(recorded_in or str(path), f"{path} does not match the SHA-256 recorded here: the "
                              "extractor changed after the features were written; rebuild the features (mser "
                              "features ... --force) and retrain", field=field or None)
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataFormatError(str(path), f"not a readable JSON file ({' '.join(str(e).split())[:200]})") from None
    source = str(path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DataFormatError(source, f"must be {FORMAT!r} (not an extractor file of this suite)", field="format")
    if meta.get("version") != VERSION:
        raise DataFormatError(source, f"this suite reads extractor version {VERSION}, got {meta.get('version')!r}",
                              field="version")
    for key, kinds in (("kind", str), ("modality", str), ("created_by", str), ("settings", dict),
                       ("versions", dict), ("files", dict)):
        if not isinstance(meta.get(key), kinds):
            raise DataFormatError(source, f"must be a {kinds.__name__}, got {type(meta.get(key)).__name__}",
                                  field=key)
    for key in ("kind", "modality", "created_by"):
        check_text(source, meta[key], key)
    dim = meta.get("dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 1 << 20:
        raise DataFormatError(source, f"must be a whole number from 1 to {1 << 20}, got {dim!r}", field="dim")
    for name, version in meta["versions"].items():
        check_text(source, name, "versions")
        if version is not None:
            check_text(source, version, f"versions.{name}")
    unknown = sorted(set(meta["files"]) - {"arrays", "weights"})
    if unknown:
        raise DataFormatError(source, f"unknown part {unknown[0]!r}; an extractor has 'arrays' and 'weights'",
                              field="files")
    arrays, weights = {}, None
    for part, record in meta["files"].items():
        target, data = _named_file(source, path, part, record, meta["created_by"], limits)
        if part == "arrays":
            arrays = _load_arrays(str(target), data, limits)  # the very bytes whose SHA-256 was checked
        else:
            weights = target
    return meta, arrays, weights, digest


def check_text(source: str, value, field: str) -> str:
    """``value``, a non-empty string of at most :data:`MAX_TEXT` characters without invisible characters; else a
    one-line :class:`DataFormatError` naming the file and the field."""
    from .corpus import invisible_character

    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        raise DataFormatError(source, f"must be a text of 1 to {MAX_TEXT} characters, got {value!r:.80}",
                              field=field)
    found = invisible_character(value)
    if found:
        raise DataFormatError(source, f"holds an invisible character, {found}", field=field)
    return value


def _named_file(source: str, json_path: Path, part: str, record, created_by: str, limits: Limits
                ) -> tuple[Path, bytes | None]:
    """The file ``files.<part>`` names beside the JSON, after checking its SHA-256, and (arrays only) its bytes."""
    where = f"files.{part}"
    if not isinstance(record, dict) or set(record) != {"name", "sha256"}:
        raise DataFormatError(source, "must be a dict with exactly the keys 'name' and 'sha256'", field=where)
    name = check_text(source, record["name"], f"{where}.name")
    if name in (".", "..") or "/" in name or "\\" in name or not name.endswith(PARTS[part]):
        raise DataFormatError(source, f"must be the name of a {PARTS[part]} file beside the JSON, got {name!r}",
                              field=f"{where}.name")
    if not isinstance(record["sha256"], str) or not _SHA256.fullmatch(record["sha256"]):
        raise DataFormatError(source, "must be a SHA-256 in 64 lowercase hex digits", field=f"{where}.sha256")
    target = json_path.with_name(name)
    digest, kept = hashlib.sha256(), []
    with _opened(target, part) as f:
        if os.fstat(f.fileno()).st_size > limits.file_bytes:
            raise DataFormatError(str(target), limits.exceeded("file_bytes", "the file"))
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            if part == "arrays":
                kept.append(block)
    if digest.hexdigest() != record["sha256"]:
        raise DataFormatError(source, f"{target} does not match the SHA-256 recorded here: it changed after the "
                              f"extractor was saved; rebuild with: {created_by} --force", field=f"{where}.sha256")
    return target, b"".join(kept) if part == "arrays" else None


@contextlib.contextmanager
def _opened(path: Path, part: str):
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such extractor {part} file (it belongs beside its JSON)") from None
    except OSError as e:
        raise DataFormatError(str(path), f"cannot be read: {e.strerror or type(e).__name__}") from None
    with f:
        yield f


def _load_arrays(source: str, data: bytes, limits: Limits) -> dict[str, np.ndarray]:
    """The arrays of an npz's bytes (the marker dropped), refused when they need pickle, are not plain numbers, or
    would take more than ``limits.array_bytes``."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except zipfile.BadZipFile as e:
        raise DataFormatError(source, f"not a readable npz file ({e})") from None
    names = [m.filename for m in members]
    if len(names) > MAX_ARRAYS or not all(n.endswith(".npy") for n in names) or f"{MARKER}.npy" not in names:
        raise DataFormatError(source, f"not an extractor npz of this suite (members {', '.join(names)[:200]})")
    if sum(m.file_size for m in members) > limits.array_bytes:
        raise DataFormatError(source, limits.exceeded("array_bytes", "its arrays"))
    arrays = {}
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        for name in npz.files:
            try:
                value = npz[name]
            except (ValueError, OSError, EOFError) as e:
                raise DataFormatError(source, f"cannot be read without pickle ({' '.join(str(e).split())[:160]})",
                                      field=name) from None
            if value.dtype.kind not in "fiu":
                raise DataFormatError(source, f"must hold plain numbers, got dtype {value.dtype}", field=name)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise DataFormatError(source, "holds a non-finite value", field=name)
            arrays[name] = value
    if arrays.pop(MARKER).tolist() != VERSION:
        raise DataFormatError(source, f"this suite reads extractor arrays of version {VERSION}", field=MARKER)
    return arrays
