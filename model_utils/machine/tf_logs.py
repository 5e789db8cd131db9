"""TensorFlow's C++ start-up log lines, kept out of stderr.

While it is imported, TensorFlow (2.21) logs a few lines through absl before absl is initialised ("oneDNN custom
operations are on", "Could not find cuda drivers"), and ``TF_CPP_MIN_LOG_LEVEL`` does not silence those. C++ writes
them straight to file descriptor 2, out of reach of Python's ``sys.stderr``: they clutter ``mser run --quiet``, and
in a notebook kernel (whose descriptor 2 ipykernel forwards to the notebook) they become red stderr blocks in the
executed notebooks and their HTML.

:func:`filter_import_logs` installs an import hook: the first ``import tensorflow`` (by Keras or anyone) runs with
descriptor 2 pointed at a temporary file, and what it caught is written to ``sys.stderr`` afterwards, less the log
lines that ``TF_CPP_MIN_LOG_LEVEL`` hides (:func:`is_hidden`). Anything else (a Python warning, a crash message)
still shows. Importing this module imports nothing heavy.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import os
import re
import sys
import tempfile

SEVERITIES = "IWEF"  # TF_CPP_MIN_LOG_LEVEL=1 hides I(nfo), 2 also W(arning), 3 also E(rror); F(atal) always shows
# absl's "I0000 00:00:1796055762.333928   20155 port.cc:153] ..." (before absl is initialised, seconds since 1970 in
# the seconds field) and TensorFlow's own
# "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] ..."
_LOG_LINE = re.compile(r"(?:(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
                       r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tf>[IWEF]) \S+:\d+\] )")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def min_log_level() -> int:
    """``TF_CPP_MIN_LOG_LEVEL`` as TensorFlow reads it (0, show everything, when unset or not a number)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def is_hidden(line: str, level: int | None = None) -> bool:
    """Whether ``line`` is a TensorFlow / absl C++ log line below ``level`` (default: ``TF_CPP_MIN_LOG_LEVEL``)."""
    level = min_log_level() if level is None else level
    if line.startswith(_ABSL_BANNER):
        return level >= 1
    match = _LOG_LINE.match(line)
    return bool(match) and SEVERITIES.index(match.group("absl") or match.group("tf")) < level


@contextlib.contextmanager
def filtered_stderr():
    """Run the body with file descriptor 2 caught in a temporary file, then write what it caught to ``sys.stderr``
    without the lines :func:`is_hidden` hides. Without a usable descriptor 2, the body runs as is."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not is_hidden(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


class _FilteredLoader(importlib.abc.Loader):
    """Executes a module with :func:`filtered_stderr`; leaves the module with its own loader."""

    def __init__(self, loader, finder: "_TensorFlowImport"):
        self.loader, self.finder = loader, finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self.finder)  # once: later imports are plain
        with filtered_stderr():
            self.loader.exec_module(module)


class _TensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and hands back its spec with a :class:`_FilteredLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _FilteredLoader(spec.loader, self)
                return spec
        return None


def filter_import_logs() -> None:
    """Filter the C++ log lines of the first ``import tensorflow`` of this process (nothing if it already happened
    or the hook is in place)."""
    if "tensorflow" in sys.modules or any(isinstance(f, _TensorFlowImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TensorFlowImport())
