"""Download Poria et al.'s IEMOCAP feature pickle and verify it by its git blob SHA-1.

``IEMOCAP_features_raw.pkl`` is published inside two GitHub repositories; both copies are the same git blob, so
the blob hash identifies the file wherever it comes from. :func:`download` tries each URL in turn, streams into a
temporary ``.part`` file beside the destination, checks the size and the hash, and only then renames it into
place: a failed or interrupted download leaves nothing behind. Standard library only.
"""
from __future__ import annotations

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from data_utils.fileio import OutputExistsError, atomic_path, check_writable

__all__ = [
    "DEFAULT_PATH",
    "DEFAULT_URLS",
    "IEMOCAP_BLOB_SHA1",
    "DownloadError",
    "download",
    "git_blob_sha1",
]

DEFAULT_URLS: tuple[str, ...] = (
    "https://github.com/declare-lab/conv-emotion/raw/master/bc-LSTM-pytorch/IEMOCAP_features/IEMOCAP_features_raw.pkl",
    "https://github.com/vennietweek/multimodal-speech-emotion-recognition/raw/main/dataset/iemocap/raw/IEMOCAP_features_raw.pkl",
)
IEMOCAP_BLOB_SHA1 = "a21501009647eb0774a638ccd123aba6668768cc"
DEFAULT_PATH = Path("dataset/iemocap/raw/IEMOCAP_features_raw.pkl")

ProgressCallback = Callable[[int, int | None], None]

_CHUNK = 1 << 16


class DownloadError(RuntimeError):
    """No URL produced a verified file. ``failures`` holds ``(url, reason)`` for every URL tried."""

    def __init__(self, message: str, failures: Sequence[tuple[str, str]] = ()):
        super().__init__(message)
        self.failures = list(failures)


class _AttemptFailed(Exception):
    """One URL failed; the message is the reason. Internal: collected into a DownloadError."""


def _blob_header(size: int) -> bytes:
    return b"blob %d\0" % size


def git_blob_sha1(path) -> str:
    """The SHA-1 ``git hash-object`` gives the file: sha1(b"blob <size>\\0" + content), read in chunks."""
    path = Path(path)
    digest = hashlib.sha1(_blob_header(path.stat().st_size))
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _StderrProgress:
    """A single ``\\r``-updated line on stderr, redrawn at most ten times a second."""

    def __init__(self) -> None:
        self._last = 0.0
        self._drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done != total and now - self._last < 0.1:
            return
        self._last = now
        mib = 1 << 20
        if total:
            line = f"{done / mib:.1f} / {total / mib:.1f} MiB ({100 * done / total:3.0f}%)"
        else:
            line = f"{done / mib:.1f} MiB"
        sys.stderr.write(f"\r{line}   ")
        sys.stderr.flush()
        self._drawn = True

    def end(self) -> None:
        if self._drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
        self._drawn = False
        self._last = 0.0


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _fetch(url: str, tmp: Path, expected_sha1: str, timeout: float, progress: ProgressCallback | None) -> None:
    """Stream ``url`` into ``tmp`` and verify size and blob hash; raise _AttemptFailed with the reason."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        raise _AttemptFailed(f"HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason if isinstance(e.reason, str) else _describe(e.reason)
        raise _AttemptFailed(f"cannot open: {reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as e:
        raise _AttemptFailed(f"cannot open: {_describe(e)}") from None

    with response, open(tmp, "wb") as out:
        total = _content_length(response)
        # With the size known up front the blob hash is computed while streaming; otherwise from the file after.
        digest = hashlib.sha1(_blob_header(total)) if total is not None else None
        done = 0
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as e:
                raise _AttemptFailed(f"connection failed after {done} bytes: {_describe(e)}") from None
            if not chunk:
                break
            out.write(chunk)  # local write errors (disk full, ...) propagate: they are not this URL's fault
            if digest is not None:
                digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)

    if total is not None and done != total:
        raise _AttemptFailed(f"truncated body: received {done} of {total} bytes (Content-Length)")
    actual = digest.hexdigest() if digest is not None else git_blob_sha1(tmp)
    if actual != expected_sha1:
        raise _AttemptFailed(f"git blob SHA-1 mismatch: got {actual}, expected {expected_sha1}")


def download(
    dest=DEFAULT_PATH,
    *,
    urls: Sequence[str] = DEFAULT_URLS,
    expected_sha1: str = IEMOCAP_BLOB_SHA1,
    overwrite: bool = False,
    timeout: float = 60,
    progress: bool | ProgressCallback = True,
) -> Path:
    """Fetch the file to ``dest`` from the first URL that yields it with the expected git blob SHA-1.

    If ``dest`` already holds the right file (and ``overwrite`` is false) it is returned without any download.
    Raises :class:`OutputExistsError` when ``dest`` exists with the wrong hash and ``overwrite`` is false, and
    :class:`DownloadError` (listing every URL with its reason) when no URL works. On failure no file is left behind.
    ``progress``: True draws a line on stderr, a callable gets ``(bytes_done, total_or_None)``, False is silent.
    """
    dest = Path(dest)
    expected_sha1 = expected_sha1.lower()
    if isinstance(urls, str):
        urls = (urls,)
    if not urls:
        raise ValueError("no URLs to download from")

    if not overwrite and dest.is_file():
        actual = git_blob_sha1(dest)
        if actual == expected_sha1:
            return dest
        raise OutputExistsError(
            f"{dest} exists but has the wrong git blob SHA-1 ({actual}, expected {expected_sha1}): it is not the "
            f"expected file, or it is damaged. Refusing to overwrite it; move it away or pass --force / overwrite=True."
        )
    check_writable(dest, overwrite=overwrite)  # e.g. dest is a directory

    if progress is True:
        reporter: ProgressCallback | None = _StderrProgress()
    elif callable(progress):
        reporter = progress
    else:
        reporter = None

    failures: list[tuple[str, str]] = []
    for url in urls:
        try:
            with atomic_path(dest, overwrite=overwrite) as tmp:
                _fetch(url, tmp, expected_sha1, timeout, reporter)
        except _AttemptFailed as e:
            failures.append((url, str(e)))
            continue
        finally:
            if isinstance(reporter, _StderrProgress):
                reporter.end()
        return dest

    lines = "\n".join(f"  - {url}: {reason}" for url, reason in failures)
    raise DownloadError(
        f"could not download {dest.name} to {dest}; every URL failed:\n{lines}\n"
        f"You can download the file yourself and place it at {dest} "
        f"(its git blob SHA-1, as printed by `git hash-object`, must be {expected_sha1}).",
        failures,
    )
