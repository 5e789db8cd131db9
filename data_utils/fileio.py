"""Atomic, no-clobber file writing: every output of the suite goes through here."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import platform
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterable, Sequence


class OutputExistsError(FileExistsError):
    """Refusing to overwrite an existing output without ``overwrite=True`` (``--force`` on the CLI)."""


class OutputPathError(OSError):
    """An output that cannot be written where it was asked for: a file stands where a folder must be, or the folder
    does not let us write."""


def check_writable(path, *, overwrite: bool = False) -> Path:
    """``path`` as a ``Path`` if a file may be written there: refused (:class:`OutputExistsError`) if something is
    there, unless ``overwrite``; even then only a regular file is replaced (:class:`OutputPathError` for a
    directory, a device, a FIFO, a socket or a symbolic link)."""
    path = Path(path)
    if not _lexists(path):
        return path
    if not overwrite:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it (pass --force / overwrite=True)")
    kind = _kind(path)
    if kind != "regular file":
        raise OutputPathError(f"{path} is {kind}; --force replaces only a regular file this command wrote, so "
                              "choose another path")
    return path


def _lexists(path: Path) -> bool:
    """Whether anything, even a dangling symbolic link, is at ``path``; OS errors become :class:`OutputPathError`."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing there (a parent folder may be a file)
        return False
    except OSError as e:
        raise OutputPathError(f"{_shown(path)}: {e.strerror or e}") from None
    return True


def _kind(path: Path) -> str:
    """What stands at ``path``, in words ('regular file', 'a directory', 'a symbolic link', ...)."""
    mode = os.lstat(path).st_mode
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "regular file" if stat.S_ISREG(mode) else "not a regular file"


def _shown(path) -> str:
    """A path for a one-line message: a very long one is cut in the middle."""
    text = str(path)
    return text if len(text) <= 200 else f"{text[:120]}…{text[-60:]}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_output_path(path, *, directory: bool = False, overwrite: bool = False, option: str = "",
                      inputs: Iterable = ()) -> Path:
    """Check, before any slow work, that ``path`` can be written: a file (refused if it exists, unless
    ``overwrite``; even then only a regular file) or, with ``directory``, a folder (which may exist: run directories
    resume, and say themselves what they hold). Creates nothing.

    ``inputs``: the files the same command reads; ``path`` may never be one of them, ``--force`` or not.
    ``option`` (``"--out"``) starts the messages. Raises :class:`OutputExistsError` (an existing file, or a file where
    the folder should be) or :class:`OutputPathError` (an input, a non-regular file, a symbolic link that leads
    nowhere, a file among its parent folders, a name the file system refuses, a folder we cannot write in), each
    naming the path.
    """
    path = Path(path)
    label = f"{option} {_shown(path)}" if option else _shown(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputPathError(f"{label} is also an input of this command ({_shown(source)}); writing there would "
                                  "destroy it: choose another path")
    try:
        if _lexists(path) and not path.exists():
            raise OutputPathError(f"{label} is a symbolic link to {_shown(os.readlink(path))}, which does not "
                                  "exist; remove the link or choose another path")
        if directory and path.exists() and not path.is_dir():
            raise OutputExistsError(f"{label} exists and is not a directory; choose another {option or 'folder'}")
        if not directory:
            if path.is_dir():
                raise OutputPathError(f"{label} is a directory; give a file name")
            try:
                check_writable(path, overwrite=overwrite)
            except OutputExistsError:
                raise OutputExistsError(f"{label} exists; refusing to overwrite it (pass --force)") from None
            except OutputPathError as e:
                raise OutputPathError(f"{option + ' ' if option else ''}{e}") from None
        start = path if directory else path.parent
        existing = next(p for p in (start, *start.parents) if _lexists(p))
        if not existing.is_dir():
            raise OutputPathError(f"{label} cannot be created: {_shown(existing)} is a file, not a directory")
        too_long = _too_long(path, existing)
        if too_long:
            raise OutputPathError(f"{label} cannot be created: {too_long}")
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=existing)
    except PermissionError as e:
        raise OutputPathError(f"{label} cannot be written: no permission to write in {_shown(existing)} "
                              f"({e.strerror or e})") from None
    except OSError as e:
        if isinstance(e, (OutputExistsError, OutputPathError)):
            raise
        raise OutputPathError(f"{label} cannot be written: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _too_long(path: Path, existing: Path) -> str:
    """Why the file system would refuse to create ``path`` below the existing folder ``existing`` ('' if not)."""
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        return ""
    # the longest name a write makes there: the temporary file beside the output (".<name>.XXXXXXXX.part<suffix>")
    for part in path.relative_to(existing).parts if path != existing else ():
        if len(os.fsencode(part)) + 24 > name_max:
            return f"the name {_shown(part)!r} is {len(os.fsencode(part))} bytes long; this file system allows " \
                   f"{name_max - 24} here"
    if len(os.fsencode(os.path.abspath(path))) + 24 > path_max:
        return f"the path is longer than this file system allows ({path_max} bytes)"
    return ""


@contextlib.contextmanager
def atomic_path(path, *, overwrite: bool = False, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path`` in one step.

    ``suffix`` ends the temporary name, for writers that insist on an extension (``.keras``, ``.npz``).

    On any error the temporary file is removed and ``path`` is untouched, so readers never see half a file.
    """
    path = check_writable(path, overwrite=overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=f".part{suffix}", dir=path.parent)
    except OSError as e:
        raise OutputPathError(f"{_shown(path)} cannot be written: {e.strerror or e}") from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the output gets the usual permissions
    try:
        try:
            yield Path(tmp)
        except OSError as e:
            if isinstance(e, (OutputExistsError, OutputPathError)):
                raise
            # a full disk (ENOSPC), a file-size limit (EFBIG), a vanished folder: the output is named, nothing kept
            raise OutputPathError(f"{_shown(path)} could not be written: {e.strerror or e}") from None
        if _lexists(path):
            if not overwrite:  # someone else wrote it meanwhile
                raise OutputExistsError(f"{path} appeared while writing; refusing to overwrite it")
            check_writable(path, overwrite=True)  # still a regular file, not a link or device put there meanwhile
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


STAGING_MARK = ".mser-staging"  # inside every staging folder: the suite wrote it (pid, host), so may remove it
_LIVE_STAGING: set[Path] = set()  # this process's staging folders not yet renamed or removed


def staging_dir(parent, *, prefix: str, suffix: str = "") -> Path:
    """A new empty folder in ``parent`` (created if needed) under a unique temporary name, with the permissions a
    plain ``mkdir`` gives under the umask (``tempfile.mkdtemp`` makes it private); rename it into place when
    complete (:func:`release_staging`). It holds :data:`STAGING_MARK`, naming this process, so that a later run can
    tell a folder left by a killed run of this suite from anything else."""
    parent = Path(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
        os.chmod(folder, 0o777 & ~_umask())
        (folder / STAGING_MARK).write_text(json.dumps({"pid": os.getpid(), "host": platform.node()}) + "\n")
    except OSError as e:
        raise OutputPathError(f"{_shown(parent)}: cannot create a staging folder: {e.strerror or e}") from None
    _LIVE_STAGING.add(folder)
    return folder


def release_staging(folder: Path, final: Path | None = None) -> None:
    """Rename a complete staging folder onto ``final`` (its mark removed), or, without ``final``, remove it."""
    folder = Path(folder)
    try:
        if final is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            (folder / STAGING_MARK).unlink(missing_ok=True)
            folder.rename(final)
    finally:
        _LIVE_STAGING.discard(folder)


def remove_live_staging() -> None:
    """Remove every staging folder this process still has (what a signal handler calls before the process ends)."""
    for folder in list(_LIVE_STAGING):
        release_staging(folder)


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


# ------------------------------------------------------------------------------------------------ CSV

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A value as a CSV cell a spreadsheet will not run: text that starts like a formula (``= + - @``, tab, carriage
    return) gets a leading apostrophe, as OWASP's CSV-injection guidance says. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    if isinstance(value, float) and math.isnan(value):
        return ""  # as pandas writes a missing value
    return value


def csv_text(rows: Iterable[Sequence]) -> str:
    """Rows as CSV text, written by the ``csv`` module (quoted where a comma, quote or newline needs it) with every
    cell through :func:`csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue()


def frame_csv(frame, *, index: bool = False) -> str:
    """A pandas DataFrame as :func:`csv_text` (header first; with ``index``, the index as the first column)."""
    frame = frame.reset_index() if index else frame
    return csv_text([list(map(str, frame.columns)), *frame.itertuples(index=False, name=None)])
