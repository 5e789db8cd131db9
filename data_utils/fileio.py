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


class OutputPathError(OSError):
    """An output that cannot be written where it was asked for: a file stands where a folder must be, or the folder
    does not let us write."""


def check_writable(path, *, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it (pass --force / overwrite=True)")
    return path


def check_output_path(path, *, directory: bool = False, overwrite: bool = False, option: str = "") -> Path:
    """Check, before any slow work, that ``path`` can be written: a file (refused if it exists, unless
    ``overwrite``) or, with ``directory``, a folder (which may exist: run directories resume). Creates nothing.

    ``option`` (``"--out"``) starts the messages. Raises :class:`OutputExistsError` (an existing file, or a file where
    the folder should be) or :class:`OutputPathError` (a file among its parent folders; a folder we cannot write in),
    each naming the path.
    """
    path = Path(path)
    label = f"{option} {path}" if option else str(path)
    if directory and path.exists() and not path.is_dir():
        raise OutputExistsError(f"{label} exists and is not a directory; choose another {option or 'folder'}")
    if not directory:
        if path.is_dir():
            raise OutputPathError(f"{label} is a directory; give a file name")
        check_writable(path, overwrite=overwrite)
    start = path if directory else path.parent
    existing = next(p for p in (start, *start.parents) if p.exists())
    if not existing.is_dir():
        raise OutputPathError(f"{label} cannot be created: {existing} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=existing)
    except OSError as e:
        raise OutputPathError(f"{label} cannot be written: no permission to write in {existing} "
                              f"({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)
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


def staging_dir(parent, *, prefix: str, suffix: str = "") -> Path:
    """A new empty folder in ``parent`` (created if needed) under a unique temporary name, with the permissions a
    plain ``mkdir`` gives under the umask (``tempfile.mkdtemp`` makes it private); rename it into place when
    complete."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


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
