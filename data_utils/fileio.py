"""Atomic, no-clobber file writing: every output of the suite goes through here."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path


class OutputExistsError(FileExistsError):
    """Refusing to overwrite an existing output without ``overwrite=True`` (``--force`` on the CLI)."""


def check_writable(path, *, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it (pass --force / overwrite=True)")
    return path


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    ``suffix`` ends the temporary name, for writers that insist on an extension (``.keras``, ``.npz``).

    On any error the temporary file is removed and ``path`` is untouched, so readers never see half a file.
    """
    path = check_writable(path, overwrite=overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".part{suffix}", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the output gets the usual permissions
    try:
        yield Path(tmp)
        if not overwrite and path.exists():  # someone else wrote it meanwhile
            raise OutputExistsError(f"{path} appeared while writing; refusing to overwrite it")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path, data: bytes, *, overwrite: bool = False) -> Path:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path, text: str, *, overwrite: bool = False) -> Path:
    return write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def to_json(obj, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``obj``: a non-finite float (NaN, ±inf), which JSON cannot hold, is written as
    ``null``."""
    return json.dumps(_json_ready(obj), indent=indent, allow_nan=False)


def _json_ready(obj):
    if isinstance(obj, dict):
        return {k: _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj, *, overwrite: bool = False) -> Path:
    """Write ``obj`` as strict JSON (:func:`to_json`), atomically."""
    return write_text(path, to_json(obj) + "\n", overwrite=overwrite)
