"""Who may write a run directory, and what in it the suite may remove.

A run directory is the suite's own: its ``config.json`` (the marker, written before any seed) says so, and the suite
removes only what it wrote there (complete seed folders, its staging folders and temporary files). A folder that
holds anything else is refused, unless it is empty; ``--force`` widens none of this. One process writes a run
directory at a time: :func:`claim` takes its lock file (``.mser.lock``, with the holder's pid, host and command)
and refuses a second writer, naming the first; a lock left by a process that died is taken over, and the file goes
when the run ends.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from data_utils.fileio import STAGING_MARK, OutputExistsError, OutputPathError

CONFIG = "config.json"
SUMMARY = "summary.json"
INPUTS = "inputs.json"  # how to build the inputs of the run's models (model_utils.run.inputs)
STANDARDIZATION = "standardization.npz"  # each fold's standardisation statistics (model_utils.run.inputs)
PREDICTIONS_CSV = "predictions.csv"  # per utterance: in a seed folder that seed's, in the run directory the ensemble's
MODEL_CARD = "MODEL_CARD.md"
SEED_RESULT = "result.json"
PREDICTIONS = "predictions.npz"
CONFUSION = "confusion_matrix.csv"
LOCK = ".mser.lock"
# What the suite writes at the top of a run directory besides config.json and the seed folders.
RUN_FILES = (SUMMARY, INPUTS, STANDARDIZATION, PREDICTIONS_CSV, MODEL_CARD)
SEED_STAGING_PREFIX = ".seed_"  # .seed_<s>.XXXXXXXX.part: a seed folder being written
MODEL_STAGING_PREFIX = ".models."  # .models.XXXXXXXX: the models of a seed being trained

_SEED = re.compile(r"^seed_(\d+)$")
_SEED_FILE = re.compile(r"^(result\.json|predictions\.npz|predictions\.csv|confusion_matrix\.csv|model\.keras|"
                        r"fold_[^/]+\.keras)$")
# what an interrupted atomic write (data_utils.fileio.atomic_path) or staging folder of ours is called
_TEMPORARY = re.compile(r"^\.(" + "|".join(re.escape(n) for n in (CONFIG, *RUN_FILES)) + r")\.[A-Za-z0-9_]{8}\.part(\.npz)?$")
_STAGING = re.compile(r"^(\.seed_\d+\.[A-Za-z0-9_]{8}\.part|\.models\.[A-Za-z0-9_]{8})$")
_SHOWN = 4


class RunDirectoryError(OutputExistsError):
    """A run directory that is not the suite's to write: it holds what the suite did not write, or another run
    holds its lock. The message names the folder and what is in the way."""


def is_run_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.json`` the runner wrote (a JSON object with the run's sections)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(document, dict) and {"experiment", "train_config", "data", "evaluation"} <= set(document)


def is_seed_folder(path: Path) -> bool:
    """A folder ``seed_<s>`` as :func:`model_utils.results.write_seed` leaves it: its result and predictions, and
    nothing but the files a seed folder holds."""
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return {SEED_RESULT, PREDICTIONS} <= names and all(_SEED_FILE.match(n) for n in names)


def is_staging(path: Path) -> bool:
    """A staging folder of a run of this suite that never finished: named as the runner names them, and holding its
    mark (or, from before the mark existed, nothing but seed files)."""
    if not (_STAGING.match(path.name) and path.is_dir() and not path.is_symlink()):
        return False
    try:
        names = {p.name for p in path.iterdir()}
    except OSError:
        return False
    return STAGING_MARK in names or all(_SEED_FILE.match(n) for n in names)


@dataclass(frozen=True)
class Contents:
    """What a run directory holds, sorted into what the suite wrote and what it did not."""

    config: bool  # a config.json of the runner's
    seeds: dict[int, Path]  # complete seed folders, by seed
    leftovers: list[Path]  # staging folders and temporary files of runs that were killed
    foreign: list[str]  # names of everything else

    @property
    def empty(self) -> bool:
        return not (self.config or self.seeds or self.leftovers or self.foreign)


def contents(out: Path) -> Contents:
    """Sort the entries of ``out`` (an existing folder) into :class:`Contents`."""
    out = Path(out)
    config = (out / CONFIG).is_file() and is_run_config(out / CONFIG)
    seeds, leftovers, foreign = {}, [], []
    for path in sorted(out.iterdir()):
        name = path.name
        seed = _SEED.match(name)
        if name == CONFIG and config or name == LOCK or (name in RUN_FILES and config and path.is_file()):
            continue
        if seed and not path.is_symlink() and path.is_dir() and is_seed_folder(path):
            seeds[int(seed.group(1))] = path
        elif _TEMPORARY.match(name) and path.is_file() or is_staging(path):
            leftovers.append(path)
        else:
            foreign.append(name)
    return Contents(config, dict(sorted(seeds.items())), leftovers, foreign)


def check_ours(out: Path, *, option: str = "--out") -> Contents:
    """The :class:`Contents` of ``out`` if the suite may write there: a new or empty folder, or a run directory
    holding only what the suite wrote. Raises :class:`RunDirectoryError` naming what is in the way."""
    out = Path(out)
    if not out.exists():
        return Contents(False, {}, [], [])
    if not out.is_dir():
        raise RunDirectoryError(f"{option} {out} exists and is not a directory; choose another {option}")
    found = contents(out)
    if found.foreign:
        shown = ", ".join(found.foreign[:_SHOWN]) + (f" and {len(found.foreign) - _SHOWN} more"
                                                     if len(found.foreign) > _SHOWN else "")
        what = "is not a run directory of this suite" if not found.config else "holds entries this suite did not write"
        raise RunDirectoryError(f"{option} {out} {what} ({shown}); the suite writes only into a new or empty folder "
                                "or one of its own run directories, and never removes what it did not write: "
                                "choose another --out, or move those entries away")
    return found


def run_directory_of(path) -> Path | None:
    """The run directory ``path`` is or lies inside (the nearest folder up from it with a runner's ``config.json``),
    or None: where a command's other outputs (predictions, robustness results, logs) must never go, since a run
    directory holds only what ``mser run`` writes."""
    here = Path(path).absolute()
    return next((p for p in (here, *here.parents) if is_run_config(p / CONFIG)), None)


def remove_leftovers(found: Contents) -> None:
    """Remove the staging folders and temporary files of killed runs (call only under :func:`claim`)."""
    for path in found.leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_seed(folder: Path) -> None:
    """Remove a complete seed folder (one :func:`is_seed_folder` accepts; anything else is refused)."""
    if not is_seed_folder(folder):
        raise RunDirectoryError(f"{folder} is not a seed folder this suite wrote; refusing to remove it")
    shutil.rmtree(folder)


# ------------------------------------------------------------------------------------------------ the lock

def _holder() -> dict:
    return {"pid": os.getpid(), "host": platform.node(), "command": " ".join(sys.argv)[:500],
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('since', '?')}: "
            f"{str(holder.get('command', '?'))[:200]}")


@contextlib.contextmanager
def claim(out: Path, *, option: str = "--out"):
    """Hold ``out``'s lock while the block runs (the folder is created if needed): one writer per run directory.

    The lock is an ``fcntl`` lock on ``out/.mser.lock``, so it ends with its process however that process ends; the
    file names the holder (pid, host, command, since when) for the message a second writer gets
    (:class:`RunDirectoryError`), and is removed when the block ends. A lock file whose holder died is taken over.
    """
    import fcntl

    out = Path(out)
    path = out / LOCK
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{option} {out} cannot be created: {e.strerror or e}") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OutputPathError(f"{option} {out} cannot be written: {e.strerror or e}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise OutputPathError(f"{option} {out}: cannot lock {LOCK}: {e.strerror or e}") from None
            raise RunDirectoryError(f"{option} {out} is being written by another run ({_describe(holder)}); wait "
                                    "for it to end, or choose another --out") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and our lock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder()) + "\n").encode(), 0)
        yield out
    finally:
        with contextlib.suppress(OSError):  # removed while locked, so a waiting opener sees a new file
            os.unlink(path)
        os.close(fd)


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
