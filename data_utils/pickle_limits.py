"""What reading one pickle may cost (:class:`Limits`), the errors a read raises, and the file formats that are
not pickles (:func:`foreign_format`). Part of :mod:`data_utils.safe_pickle`, which re-exports every name here."""
from __future__ import annotations

import dataclasses
import os
import pickle
from dataclasses import dataclass

GiB = 1 << 30
LIMITS_ENV = "MSER_LOAD_LIMITS"


class _PickleReadError(pickle.UnpicklingError):
    """A problem with a pickle's bytes: ``source`` (the file) and ``problem``; the message is one line."""

    def __init__(self, source: str, problem: str):
        self.source, self.problem = str(source), " ".join(str(problem).split())
        super().__init__(f"{self.source}: {self.problem}")


class UnsafePickleError(_PickleReadError):
    """The pickle asks for something this reader refuses: code, objects other than plain numpy arrays and builtin
    containers, or more than its :class:`Limits` allow."""


class DamagedPickleError(_PickleReadError):
    """The bytes are not a well-formed pickle: truncated, corrupted, compressed, or not a pickle at all."""


@dataclass(frozen=True)
class Limits:
    """What one data file may cost, checked while it is read. The defaults are far above the largest corpora in
    this layout (IEMOCAP: 151 dialogues, 7 433 utterances, ~100 MB; MELD; CMU-MOSEI: ~23k utterances, padded
    arrays up to ~1 GB).

    Raise a limit for one call with ``read_corpus(path, limits=Limits(array_bytes=32 * GiB))``, or for every
    command with the environment variable ``MSER_LOAD_LIMITS='array_bytes=32e9,file_bytes=16e9'`` (see
    :meth:`from_env`).
    """

    file_bytes: int = 8 * GiB  # size of the file
    array_bytes: int = 8 * GiB  # all numpy arrays together, each counted every time it is referenced
    string_bytes: int = 2 * GiB  # one str, bytes or bytearray (an array's data is one)
    container_items: int = 1 << 24  # entries of one list, tuple, dict or set (16 Mi)
    total_items: int = 100_000_000  # objects created, and objects reached when walking the result (shared ones
    #                                 counted every time they are reached)
    depth: int = 100  # nesting of containers in the result (Poria's layout needs 4)
    dialogues: int = 100_000  # dialogues in a corpus (checked by data_utils.corpus)
    utterances: int = 10_000_000  # utterances in a corpus, all dialogues together (checked by data_utils.corpus)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"Limits.{f.name} must be a positive whole number, got {value!r}")

    @classmethod
    def from_env(cls, environ=None) -> Limits:
        """The defaults, overridden by ``MSER_LOAD_LIMITS``: comma-separated ``name=value`` pairs of the fields
        above, values as whole numbers (``8000000000``, ``8e9``, ``8_000_000_000``). Raises ``ValueError`` naming
        the variable for an unknown name or a value that is not a positive whole number."""
        text = (os.environ if environ is None else environ).get(LIMITS_ENV, "").strip()
        if not text:
            return cls()
        names = [f.name for f in dataclasses.fields(cls)]
        values = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, raw = (s.strip() for s in part.partition("="))
            if name not in names or not sep:
                raise ValueError(f"{LIMITS_ENV}: unknown limit {part!r}; write name=value pairs of "
                                 f"{', '.join(names)}")
            try:
                number = float(raw.replace("_", ""))
            except ValueError:
                number = float("nan")
            if not (number >= 1 and number == int(number)) or number > 2 ** 62:
                raise ValueError(f"{LIMITS_ENV}: {name}={raw!r} is not a positive whole number")
            values[name] = int(number)
        return cls(**values)

    def exceeded(self, name: str, what: str) -> str:
        """The message for ``what`` going beyond limit ``name``, saying how to raise it."""
        return (f"refused: {what}, beyond the reader's limit {name}={getattr(self, name):,}; if the file is genuine, "
                f"raise it ({LIMITS_ENV}='{name}=N' in the environment, or read_corpus(path, "
                f"limits=Limits({name}=N)))")


# ----------------------------------------------------------------------------------------------- file formats

_FOREIGN = (  # magic bytes -> what the file is and what to do; none of these can start a pickle
    (b"\x1f\x8b", "looks gzip-compressed: decompress it first (gunzip -c FILE > FILE.pkl)"),
    (b"PK\x03\x04", "is a zip archive (or .npz): extract the file from it first (unzip FILE)"),
    (b"PK\x05\x06", "is an empty zip archive"),
    (b"BZh", "looks bzip2-compressed: decompress it first (bunzip2 -c FILE > FILE.pkl)"),
    (b"\xfd7zXZ\x00", "looks xz-compressed: decompress it first (unxz -c FILE > FILE.pkl)"),
    (b"\x28\xb5\x2f\xfd", "looks zstd-compressed: decompress it first (unzstd -c FILE > FILE.pkl)"),
    (b"\xff\xfe", "looks like UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"\xfe\xff", "looks like UTF-16 text (it starts with a UTF-16 byte-order mark)"),
    (b"\xef\xbb\xbf", "looks like UTF-8 text (it starts with a byte-order mark)"),
    (b"\x93NUMPY", "is a NumPy .npy file, not a pickle"),
    (b"\x89HDF\r\n\x1a\n", "is an HDF5 file, not a pickle"),
)


def foreign_format(data: bytes, source: str) -> str | None:
    """What ``data`` is when its first bytes say it is a compressed file, an archive, UTF-16 text (with a
    byte-order mark, or ASCII text as UTF-16 without one) or another binary format, with what to do; else None.
    ``FILE`` in the advice is replaced by ``source``."""
    for magic, what in _FOREIGN:
        if data.startswith(magic):
            return what.replace("FILE", source)
    head = data[:64] if data[:1] != b"\x80" else b""  # a pickle of protocol 2-5 starts with 0x80
    if len(head) >= 8:
        even, odd = head[0::2].count(0) / len(head[0::2]), head[1::2].count(0) / len(head[1::2])
        if max(even, odd) >= 0.9 and min(even, odd) < 0.1:
            return "looks like UTF-16 text (every other byte is 0)"
    return None
