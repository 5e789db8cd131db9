"""A pickle reader that executes nothing: a restricted interpreter of the pickle opcodes, written here.

Pickles are programs: ``pickle.load`` imports and calls whatever the file names, and numpy's own reconstructors
trust the bytes they are given (an object array whose "items" are raw bytes is a pointer dereference). This module
never hands anything from a file to ``pickle`` or to numpy's reconstructors. It walks the opcodes itself and
supports what numpy arrays and Python 2/3 builtin containers and scalars need (protocols 0–5); every other opcode
(``INST``, ``OBJ``, ``NEWOBJ``, ``EXT*``, persistent ids, out-of-band buffers) and every other global is refused.

The globals a pickle may name resolve to stand-ins written here, never to the real callables:

- ``numpy(.core|._core).multiarray._reconstruct(ndarray, shape, code)`` gives a pending array that only ``BUILD``
  with numpy's state ``(version, shape, dtype, is_fortran, rawdata)`` completes; ``numpy(.core|._core).numeric.
  _frombuffer(buf, dtype, shape, order[, axis_order])`` (protocol 5, ``pandas.to_pickle``) builds one directly;
  ``numpy(.core|._core).multiarray.scalar(dtype, raw)`` a numpy scalar. The data must be exactly
  ``prod(shape) * itemsize`` bytes; the array is ``np.frombuffer(raw, dtype).reshape(shape).copy()``.
- ``numpy.dtype(code, align, copy)`` plus ``BUILD`` with numpy's plain state: plain numbers only (bool, int and
  uint of 8–64 bits, float of 16–64 bits, complex of 64 and 128 bits), in either byte order; no fields, subarrays,
  flags, metadata or objects.
- ``set``, ``frozenset``, ``list``, ``tuple``, ``dict``, ``str``/``unicode``, ``bytes``, ``bytearray``, ``int``/``long``,
  ``float``, ``bool``, ``complex`` (``builtins`` and Python 2's ``__builtin__``) and ``_codecs.encode`` (latin-1 or
  UTF-8), each admitting only the argument shapes real pickles use.

Python 2 strings (``STRING``, ``BINSTRING``) are read as latin-1 text, as ``pickle.load(..., encoding='latin1')``
reads them (Poria et al.'s file was written by Python 2.7); an array's latin-1 data is encoded back to its bytes.

What a file may cost is bounded while it is read (:class:`Limits`): file size, array bytes, container length,
string length, objects, nesting depth; shared references (memo) count every time they are used, so a small file
that expands when walked ("billion laughs") and a container that holds itself are refused. Sets and dict keys are
scalars or flat tuples of scalars, and a container with many keys of one hash value (a hash flood) is refused.
Every refusal is an :class:`UnsafePickleError` and every damaged file a :class:`DamagedPickleError`, each one line
naming the file.
"""
from __future__ import annotations

import codecs
import dataclasses
import math
import os
import pickle
import struct
from dataclasses import dataclass

import numpy as np

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


# ----------------------------------------------------------------------------------------------- stand-ins

_PLAIN_CODES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"})
_PLAIN_WORDS = "plain numbers (bool, int and uint of 8-64 bits, float of 16-64 bits, complex of 64 or 128 bits)"
_BYTE_ORDERS = frozenset("<>|=")
_MAX_EQUAL_HASHES = 64  # keys of one hash value a set or dict may hold (real files: 1, or 2 for -1 and -2)
_MAX_INT_BYTES = 64  # an integer of a pickle (LONG1, LONG4, INT, LONG) is at most 512 bits
_MAX_NDIM = 32  # numpy's own maximum is 64
_SCALARS = (type(None), bool, int, float, complex, str, bytes, np.generic)


class _Global:
    """A global a pickle may name: a stand-in ``call(reader, args)`` for ``REDUCE``, or a bare marker (``ndarray``)
    that only a stand-in accepts as an argument."""

    __slots__ = ("name", "call")

    def __init__(self, name, call=None):
        self.name, self.call = name, call

    def __repr__(self):
        return self.name


class _PendingArray:
    """What ``_reconstruct`` returns: an array without data until ``BUILD`` gives it its state. ``slots``: the memo
    entries that hold it, rewritten to the array then."""

    __slots__ = ("slots",)
    __hash__ = None

    def __init__(self):
        self.slots = []

    def __repr__(self):
        return "an array that never received its data"


class _PendingDtype:
    """What ``numpy.dtype(code, ...)`` returns until ``BUILD`` gives it numpy's state (its byte order)."""

    __slots__ = ("code", "slots")
    __hash__ = None

    def __init__(self, code):
        self.code, self.slots = code, []

    def __repr__(self):
        return f"the numpy dtype {self.code!r} without its state"


_NDARRAY = _Global("numpy.ndarray")
_PENDING = frozenset({_PendingArray, _PendingDtype})


def _text(value) -> str | None:
    return value if isinstance(value, str) else value.decode("latin1") if isinstance(value, (bytes, bytearray)) \
        else None


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Reader:
    """One load: the budget spent so far, and the stand-ins' checks (each raises :class:`UnsafePickleError`)."""

    def __init__(self, source: str, limits: Limits):
        self.source, self.limits = source, limits
        self.array_bytes = 0
        self.hashes: dict[int, tuple[object, dict[int, int]]] = {}  # id(set or dict) -> (it, hash -> count)

    def refuse(self, problem: str):
        return UnsafePickleError(self.source, problem)

    def over(self, name: str, what: str):
        return UnsafePickleError(self.source, self.limits.exceeded(name, what))

    # -- containers

    def check_length(self, n: int, kind: str) -> None:
        if n > self.limits.container_items:
            raise self.over("container_items", f"a {kind} of {n:,} entries")

    def add_keys(self, container, keys, kind: str) -> None:
        """Check ``keys`` before they enter ``container`` (a set or dict that stays mutable): see
        :meth:`count_hashes`; the counts are kept, with the container, for the keys added later."""
        entry = self.hashes.get(id(container))
        if entry is None:
            entry = self.hashes[id(container)] = (container, {})
        self.count_hashes(keys, entry[1], kind)

    def count_hashes(self, keys, counts: dict[int, int], kind: str) -> None:
        """Check keys of a set or dict: scalars or flat tuples of scalars, and no hash value more than
        :data:`_MAX_EQUAL_HASHES` times (``counts``: hash -> keys so far), so that building it stays linear."""
        for key in keys:
            if not isinstance(key, _SCALARS) and not (
                    type(key) is tuple and all(isinstance(k, _SCALARS) for k in key)):
                raise self.refuse(f"a {kind} key or member must be a number, a string or a tuple of those, got "
                                  f"{type(key).__name__}")
            h = hash(key)
            n = counts[h] = counts.get(h, 0) + 1
            if n > _MAX_EQUAL_HASHES:
                raise self.refuse(f"a {kind} whose keys share one hash value more than {_MAX_EQUAL_HASHES} times "
                                  f"(a hash flood; e.g. {_brief(key)})")

    def new_set(self, items, kind: str):
        self.check_length(len(items), kind)
        if kind == "set":
            container = set()
            self.add_keys(container, items, kind)
            container.update(items)
            return container
        self.count_hashes(items, {}, kind)
        return frozenset(items)

    # -- strings

    def check_string(self, n: int, kind: str) -> None:
        if n > self.limits.string_bytes:
            raise self.over("string_bytes", f"a {kind} of {n:,} bytes")

    # -- numpy

    def dtype(self, value, what: str) -> np.dtype:
        if isinstance(value, np.dtype):
            return value
        raise self.refuse(f"{what}: expected a numpy dtype, got {_brief(value)}")

    def shape(self, value, what: str) -> tuple[int, ...]:
        if type(value) is tuple and len(value) <= _MAX_NDIM:
            for n in value:
                if type(n) is not int or n < 0:
                    break
            else:
                return value
        if _is_int(value):
            value = (value,)
        if type(value) is not tuple or len(value) > _MAX_NDIM or not all(_is_int(n) and n >= 0 for n in value):
            raise self.refuse(f"{what}: the shape must be a tuple of at most {_MAX_NDIM} non-negative integers, "
                              f"got {_brief(value)}")
        return value

    def raw(self, value, what: str) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return value
        if isinstance(value, str):  # Python 2's str, read as latin-1 text
            try:
                return value.encode("latin1")
            except UnicodeEncodeError:
                raise self.refuse(f"{what}: the array data is text beyond latin-1, not bytes") from None
        if isinstance(value, list):
            raise self.refuse(f"{what}: an array of Python objects (its data is a list)")
        raise self.refuse(f"{what}: the array data must be bytes, got {type(value).__name__}")

    def array(self, raw, dtype: np.dtype, shape: tuple[int, ...], order: str, axis_order=None, *,
              native: bool = False) -> np.ndarray:
        """``raw`` (exactly ``prod(shape) * dtype.itemsize`` bytes) as a new array, charged to the budget; in native
        byte order if ``native`` (as numpy's ``ndarray.__setstate__`` makes it), else in ``dtype``'s."""
        count = math.prod(shape)
        need = count * dtype.itemsize
        if self.array_bytes + need > self.limits.array_bytes:
            raise self.over("array_bytes", f"an array of shape {shape} and dtype {dtype} ({need:,} bytes) after "
                                           f"{self.array_bytes:,} bytes of arrays")
        if len(raw) != need:
            raise self.refuse(f"an array of shape {shape} and dtype {dtype} needs exactly {need:,} bytes of data, "
                              f"the file gives {len(raw):,}")
        if dtype.kind == "b" and raw.translate(None, b"\x00\x01"):
            raise self.refuse("a bool array holding bytes other than 0 and 1")
        self.array_bytes += need
        flat = np.frombuffer(raw, dtype=dtype, count=count)
        view = flat.reshape(shape, order="C").transpose(axis_order) if axis_order is not None else \
            flat.reshape(shape, order=order)
        if native and not dtype.isnative:
            return view.astype(dtype.newbyteorder("="), order="K")
        return view.copy(order="K")

    def build(self, obj, state):
        """``BUILD``: complete a pending array or dtype with numpy's state; anything else is refused."""
        if type(obj) is _PendingArray:
            return self.build_array(state)
        if type(obj) is _PendingDtype:
            return self.build_dtype(obj.code, state)
        raise self.refuse(f"BUILD (setting the state of an object) on {_brief(obj)}: only numpy arrays and dtypes "
                          "receive a state")

    def build_array(self, state) -> np.ndarray:
        what = "ndarray state"
        if type(state) is not tuple or len(state) not in (4, 5) or (len(state) == 5 and not (
                type(state[0]) is int and state[0] == 1)):
            raise self.refuse(f"{what}: expected (1, shape, dtype, is_fortran, data), got {_brief(state)}")
        shape, dtype, fortran, raw = state[-4:]
        shape = self.shape(shape, what)
        if not isinstance(dtype, np.dtype):
            dtype = self.dtype(dtype, what)
        if fortran is not False and (not isinstance(fortran, int) or fortran not in (0, 1)):
            raise self.refuse(f"{what}: is_fortran must be True or False, got {_brief(fortran)}")
        if type(raw) is not bytes:
            raw = self.raw(raw, what)
        return self.array(raw, dtype, shape, "F" if fortran else "C", native=True)

    def build_dtype(self, code: str, state) -> np.dtype:
        what = f"numpy dtype {code!r}"
        plain = type(state) is tuple and all(_is_int(v) for v in state[5:8]) and (
            (len(state) == 8 and state[0] == 3) or (len(state) == 9 and state[0] == 4 and state[8] is None))
        if not plain or not isinstance(state[1], str) or state[1] not in _BYTE_ORDERS or \
                state[2:5] != (None, None, None) or state[7] != 0:
            raise self.refuse(f"{what}: only the plain state (3, byteorder, None, None, None, -1, -1, 0) is admitted "
                              f"(no subarray, fields, flags or metadata), got {_brief(state)}")
        dtype = np.dtype(code)
        if (state[5], state[6]) not in ((-1, -1), (dtype.itemsize, dtype.alignment)):
            raise self.refuse(f"{what}: element size and alignment {state[5]}, {state[6]} do not match")
        return dtype.newbyteorder(state[1]) if state[1] in "<>" and dtype.itemsize > 1 else dtype


def _brief(value, limit: int = 80) -> str:
    """A short description of a value from a pickle, whatever its size or nesting (never walks it)."""
    if isinstance(value, (_SCALARS, _Global, _PendingArray, _PendingDtype)) and not isinstance(value, np.generic):
        text = repr(value)
        return text if len(text) <= limit else text[:limit] + "…"
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return f"a {type(value).__name__} of {len(value)} entries"
    return f"a {type(value).__name__}"


def _args(reader: _Reader, name: str, args, *counts: int) -> tuple:
    if type(args) is not tuple or len(args) not in counts:
        raise reader.refuse(f"{name} called with {_brief(args)}; admitted: "
                            f"{' or '.join(str(c) for c in counts)} argument(s)")
    return args


def _sequence(reader: _Reader, name: str, args) -> list | tuple:
    """The one list or tuple argument of a container builtin (or none)."""
    args = _args(reader, name, args, 0, 1)
    if not args:
        return ()
    if type(args[0]) not in (list, tuple):
        raise reader.refuse(f"{name}() of {_brief(args[0])}: admitted only of a list or tuple")
    reader.check_length(len(args[0]), name)
    return args[0]


def _call_reconstruct(reader: _Reader, args):
    if type(args) is tuple and len(args) == 3 and args[0] is _NDARRAY and type(args[2]) in (bytes, str) and \
            len(args[2]) <= 8:  # numpy's own form, checked fast: it comes once per array
        reader.shape(args[1], "numpy _reconstruct")
        return _PendingArray()
    subtype, shape, code = _args(reader, "numpy _reconstruct", args, 3)
    if subtype is not _NDARRAY:
        raise reader.refuse(f"numpy _reconstruct of {_brief(subtype)}: only numpy.ndarray is admitted")
    reader.shape(shape, "numpy _reconstruct")  # never allocated: BUILD gives the real shape and data
    if _text(code) is None or len(code) > 8:
        raise reader.refuse(f"numpy _reconstruct with type code {_brief(code)}")
    return _PendingArray()


def _call_frombuffer(reader: _Reader, args):
    buf, dtype, shape, order, *axis_order = _args(reader, "numpy _frombuffer", args, 4, 5)
    what = "numpy _frombuffer"
    if not isinstance(buf, (bytes, bytearray)):
        raise reader.refuse(f"{what}: the buffer must be bytes, got {_brief(buf)}")
    shape, dtype = reader.shape(shape, what), reader.dtype(dtype, what)
    axis_order = axis_order[0] if axis_order else None
    if not isinstance(order, str) or order not in ("C", "F", "K") or (axis_order is not None and (
            order != "K" or type(axis_order) is not tuple or sorted(axis_order) != list(range(len(shape))))):
        raise reader.refuse(f"{what}: order {_brief(order)} with axis order {_brief(axis_order)}")
    return reader.array(buf, dtype, shape, "C" if order == "K" else order, axis_order)


def _call_scalar(reader: _Reader, args):
    dtype, raw = _args(reader, "numpy scalar", args, 2)
    dtype = reader.dtype(dtype, "numpy scalar")
    raw = reader.raw(raw, "numpy scalar")
    if len(raw) != dtype.itemsize:
        raise reader.refuse(f"a numpy scalar of dtype {dtype} needs {dtype.itemsize} bytes, the file gives {len(raw)}")
    if dtype.kind == "b" and raw not in (b"\x00", b"\x01"):
        raise reader.refuse("a numpy bool scalar holding a byte other than 0 and 1")
    return np.frombuffer(raw, dtype=dtype)[0]


def _call_dtype(reader: _Reader, args):
    code, align, copy = _args(reader, "numpy.dtype", args, 3)
    text = _text(code)
    if text not in _PLAIN_CODES:
        raise reader.refuse(f"refused numpy dtype {_brief(code)}: this reader admits {_PLAIN_WORDS}")
    if not isinstance(align, int) or not isinstance(copy, int) or align not in (0, 1) or copy not in (0, 1):
        raise reader.refuse(f"numpy.dtype({text!r}, {_brief(align)}, {_brief(copy)}): align and copy must be "
                            "True or False")
    return _PendingDtype(text)


def _call_set(reader, args):
    return reader.new_set(_sequence(reader, "set", args), "set")


def _call_frozenset(reader, args):
    return reader.new_set(_sequence(reader, "frozenset", args), "frozenset")


def _call_list(reader, args):
    return list(_sequence(reader, "list", args))


def _call_tuple(reader, args):
    return tuple(_sequence(reader, "tuple", args))


def _call_dict(reader, args):
    args = _args(reader, "dict", args, 0, 1)
    if args and type(args[0]) is not dict:
        raise reader.refuse(f"dict() of {_brief(args[0])}: admitted only of a dict")
    return dict(args[0]) if args else {}


def _call_str(reader, args):
    args = _args(reader, "str", args, 0, 1)
    if args and type(args[0]) is not str:
        raise reader.refuse(f"str() of {_brief(args[0])}: admitted only of a str")
    return args[0] if args else ""


def _call_bytes(reader, args):
    args = _args(reader, "bytes", args, 0, 1)
    if not args:
        return b""
    value = args[0]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if type(value) in (list, tuple):
        reader.check_string(len(value), "bytes")
        if all(_is_int(v) and 0 <= v < 256 for v in value):
            return bytes(value)
    raise reader.refuse(f"bytes() of {_brief(value)}: admitted only bytes() and bytes(a list of ints 0-255)")


def _call_bytearray(reader, args):
    args = _args(reader, "bytearray", args, 0, 1)
    if args and not isinstance(args[0], (bytes, bytearray)):
        raise reader.refuse(f"bytearray() of {_brief(args[0])}: admitted only of bytes")
    return bytearray(*args)


def _number_call(kind, name: str, accepted: tuple):
    def call(reader, args):
        args = _args(reader, name, args, 0, 1)
        if args and (not isinstance(args[0], accepted) or (isinstance(args[0], str) and len(args[0]) > 64)):
            raise reader.refuse(f"{name}() of {_brief(args[0])}")
        return kind(*args)
    return call


def _call_complex(reader, args):
    args = _args(reader, "complex", args, 0, 1, 2)
    if not all(isinstance(a, (int, float)) for a in args):
        raise reader.refuse(f"complex() of {_brief(args)}: admitted only of numbers")
    return complex(*args)


_CODECS = {"latin1": "latin1", "latin-1": "latin1", "iso-8859-1": "latin1", "iso8859-1": "latin1", "l1": "latin1",
           "utf-8": "utf-8", "utf8": "utf-8"}


def _call_encode(reader, args):
    text, *rest = _args(reader, "_codecs.encode", args, 1, 2, 3)
    codec = _CODECS.get(str(rest[0]).lower().replace("_", "-")) if rest and isinstance(rest[0], str) else \
        None if rest else "utf-8"
    if codec is None or rest[1:] not in ([], ["strict"]) or not isinstance(text, str):
        raise reader.refuse(f"_codecs.encode with {_brief(args)}: admitted only text encoded as latin-1 or UTF-8")
    reader.check_string(len(text) * (4 if codec == "utf-8" else 1), "string")
    try:
        return text.encode(codec)
    except UnicodeEncodeError as e:
        raise reader.refuse(f"_codecs.encode: character {text[e.start]!r} cannot be encoded as {codec}") from None


def _globals() -> dict[tuple[str, str], _Global]:
    table = {}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _Global("numpy _reconstruct", _call_reconstruct)
        table[(f"{core}.multiarray", "scalar")] = _Global("numpy scalar", _call_scalar)
        table[(f"{core}.numeric", "_frombuffer")] = _Global("numpy _frombuffer", _call_frombuffer)
    table[("numpy", "ndarray")] = _NDARRAY
    table[("numpy", "dtype")] = _Global("numpy.dtype", _call_dtype)
    builtin = {"set": _call_set, "frozenset": _call_frozenset, "list": _call_list, "tuple": _call_tuple,
               "dict": _call_dict, "str": _call_str, "bytes": _call_bytes, "bytearray": _call_bytearray,
               "int": _number_call(int, "int", (int,)), "float": _number_call(float, "float", (int, float, str)),
               "bool": _number_call(bool, "bool", (int,)), "complex": _call_complex}
    for module in ("__builtin__", "builtins"):
        for name, call in builtin.items():
            table[(module, name)] = _Global(f"{module}.{name}", call)
    table[("__builtin__", "unicode")] = _Global("__builtin__.unicode", _call_str)
    table[("__builtin__", "long")] = _Global("__builtin__.long", builtin["int"])
    table[("_codecs", "encode")] = _Global("_codecs.encode", _call_encode)
    return table


_GLOBALS = _globals()


# ----------------------------------------------------------------------------------------------- the interpreter

_U8 = struct.Struct("<Q").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from
_F64 = struct.Struct(">d").unpack_from

# Opcodes refused by name: they build objects of arbitrary classes or take data from outside the file.
_REFUSED_OPCODES = {b"i"[0]: "INST", b"o"[0]: "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2",
                    0x84: "EXT4", b"P"[0]: "PERSID", b"Q"[0]: "BINPERSID", 0x97: "NEXT_BUFFER",
                    0x98: "READONLY_BUFFER"}


class _Truncated(Exception):
    """The file ends inside an opcode."""


def safe_loads(data: bytes, *, source: str = "<bytes>", limits: Limits | None = None):
    """The object pickled in ``data``, admitting only plain numpy arrays, numpy scalars and builtin containers and
    scalars (module docstring), within ``limits`` (default :meth:`Limits.from_env`).

    Raises :class:`UnsafePickleError` for anything refused and :class:`DamagedPickleError` for bytes that are not a
    well-formed pickle, each naming ``source``; ``ValueError`` for a malformed ``MSER_LOAD_LIMITS``.
    """
    limits = Limits.from_env() if limits is None else limits
    source = str(source)
    if len(data) > limits.file_bytes:
        raise UnsafePickleError(source, limits.exceeded("file_bytes", f"a file of {len(data):,} bytes"))
    foreign = foreign_format(data, source)
    if foreign:
        raise DamagedPickleError(source, f"not a pickle: it {foreign}")
    reader = _Reader(source, limits)
    try:
        obj = _interpret(data if type(data) is bytes else bytes(data), reader)
        _check_result(obj, reader)
    except DamagedPickleError as e:
        if data[:1] == b"\x80":
            raise
        raise DamagedPickleError(source, f"{e.problem} (this does not look like a pickle: pickles of protocol 2-5 "
                                         f"start with byte 0x80, this file with {bytes(data[:12])!r})") from None
    except MemoryError:
        raise UnsafePickleError(source, f"ran out of memory reading a file of {len(data):,} bytes (free memory, or "
                                        f"lower the limits with {LIMITS_ENV})") from None
    return obj


def _interpret(data: bytes, reader: _Reader):
    """Run the opcodes of ``data`` on a stack, as ``pickle._Unpickler`` does, with :class:`_Reader`'s checks."""
    limits = reader.limits
    max_items, max_len = limits.total_items, limits.container_items
    end = len(data)
    stack: list = []
    metastack: list = []
    memo: dict = {}
    append = stack.append
    items = 0  # objects created so far (containers and their entries, marks)
    pos = 0
    op = -1
    try:
        while True:
            op = data[pos]
            pos += 1
            # the hot opcodes of numpy-array pickles first
            if op == 0x72:  # LONG_BINPUT
                value = stack[-1]
                key = _U32(data, pos)[0]
                pos += 4
                memo[key] = value
                if type(value) in _PENDING:
                    value.slots.append(key)
            elif op == 0x6a:  # LONG_BINGET
                append(memo[_U32(data, pos)[0]])
                pos += 4
            elif op == 0x94:  # MEMOIZE
                value = stack[-1]
                key = len(memo)
                memo[key] = value
                if type(value) in _PENDING:
                    value.slots.append(key)
            elif op == 0x71:  # BINPUT
                value = stack[-1]
                key = data[pos]
                pos += 1
                memo[key] = value
                if type(value) in _PENDING:
                    value.slots.append(key)
            elif op == 0x68:  # BINGET
                append(memo[data[pos]])
                pos += 1
            elif op == 0x4b:  # BININT1
                append(data[pos])
                pos += 1
            elif op == 0x85:  # TUPLE1
                stack[-1] = (stack[-1],)
                items += 2
            elif op == 0x86:  # TUPLE2
                stack[-2:] = [(stack[-2], stack[-1])]
                items += 3
            elif op == 0x87:  # TUPLE3
                stack[-3:] = [(stack[-3], stack[-2], stack[-1])]
                items += 4
            elif op == 0x28:  # MARK
                metastack.append(stack)
                stack = []
                append = stack.append
                items += 1
            elif op == 0x74:  # TUPLE
                value = tuple(stack)
                stack = metastack.pop()
                append = stack.append
                if len(value) > max_len:
                    reader.check_length(len(value), "tuple")
                items += len(value) + 1
                append(value)
            elif op == 0x52:  # REDUCE
                args = stack.pop()
                func = stack[-1]
                if type(func) is not _Global or func.call is None:
                    raise reader.refuse(f"REDUCE (a call) of {_brief(func)}: only the admitted globals are called")
                stack[-1] = func.call(reader, args)
                items += 1
            elif op == 0x62:  # BUILD
                state = stack.pop()
                obj = stack[-1]
                value = reader.build_array(state) if type(obj) is _PendingArray else reader.build(obj, state)
                stack[-1] = value
                for key in obj.slots:
                    if memo.get(key) is obj:
                        memo[key] = value
            elif op == 0x54 or op == 0x55 or op == 0x43 or op == 0x42 or op == 0x8e or op == 0x96:
                # BINSTRING, SHORT_BINSTRING, SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
                if op == 0x55 or op == 0x43:
                    n = data[pos]
                    pos += 1
                elif op == 0x54:
                    n = _I32(data, pos)[0]
                    pos += 4
                    if n < 0:
                        raise DamagedPickleError(reader.source, f"BINSTRING of negative length {n} at byte {pos - 5}")
                elif op == 0x42:
                    n = _U32(data, pos)[0]
                    pos += 4
                else:
                    n = _U8(data, pos)[0]
                    pos += 8
                if n > 255:
                    reader.check_string(n, "string")
                if pos + n > end:
                    raise _Truncated
                raw = data[pos:pos + n]
                pos += n
                append(raw.decode("latin1") if op == 0x55 or op == 0x54 else bytearray(raw) if op == 0x96 else raw)
            elif op == 0x8c or op == 0x58 or op == 0x8d:  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
                if op == 0x8c:
                    n = data[pos]
                    pos += 1
                elif op == 0x58:
                    n = _U32(data, pos)[0]
                    pos += 4
                else:
                    n = _U8(data, pos)[0]
                    pos += 8
                if n > 255:
                    reader.check_string(n, "string")
                if pos + n > end:
                    raise _Truncated
                append(data[pos:pos + n].decode("utf-8", "surrogatepass"))
                pos += n
            elif op == 0x89:  # NEWFALSE
                append(False)
            elif op == 0x88:  # NEWTRUE
                append(True)
            elif op == 0x4e:  # NONE
                append(None)
            elif op == 0x65:  # APPENDS
                values = stack
                stack = metastack.pop()
                append = stack.append
                target = stack[-1]
                if type(target) is not list:
                    raise reader.refuse(f"APPENDS to {_brief(target)}: only lists are appended to")
                if len(target) + len(values) > max_len:
                    reader.check_length(len(target) + len(values), "list")
                target.extend(values)
                items += len(values)
            elif op == 0x61:  # APPEND
                value = stack.pop()
                target = stack[-1]
                if type(target) is not list:
                    raise reader.refuse(f"APPEND to {_brief(target)}: only lists are appended to")
                if len(target) >= max_len:
                    reader.check_length(len(target) + 1, "list")
                target.append(value)
                items += 1
            elif op == 0x75 or op == 0x73:  # SETITEMS, SETITEM
                if op == 0x75:
                    values = stack
                    stack = metastack.pop()
                    append = stack.append
                else:
                    values = stack[-2:]
                    del stack[-2:]
                target = stack[-1]
                if type(target) is not dict or len(values) % 2:
                    raise reader.refuse(f"SETITEMS on {_brief(target)}: only dicts get items")
                keys = values[0::2]
                if len(target) + len(keys) > max_len:
                    reader.check_length(len(target) + len(keys), "dict")
                reader.add_keys(target, keys, "dict")
                target.update(zip(keys, values[1::2]))
                items += len(values)
            elif op == 0x4a:  # BININT
                append(_I32(data, pos)[0])
                pos += 4
            elif op == 0x4d:  # BININT2
                append(_U16(data, pos)[0])
                pos += 2
            elif op == 0x47:  # BINFLOAT
                append(_F64(data, pos)[0])
                pos += 8
            elif op == 0x8a or op == 0x8b:  # LONG1, LONG4
                if op == 0x8a:
                    n = data[pos]
                    pos += 1
                else:
                    n = _I32(data, pos)[0]
                    pos += 4
                if n < 0 or n > _MAX_INT_BYTES:
                    raise reader.refuse(f"an integer of {n} bytes (at most {_MAX_INT_BYTES} are admitted)")
                if pos + n > end:
                    raise _Truncated
                append(int.from_bytes(data[pos:pos + n], "little", signed=True))
                pos += n
            elif op == 0x5d:  # EMPTY_LIST
                append([])
                items += 1
            elif op == 0x7d:  # EMPTY_DICT
                append({})
                items += 1
            elif op == 0x29:  # EMPTY_TUPLE
                append(())
            elif op == 0x8f:  # EMPTY_SET
                append(set())
                items += 1
            elif op == 0x90:  # ADDITEMS
                values = stack
                stack = metastack.pop()
                append = stack.append
                target = stack[-1]
                if type(target) is not set:
                    raise reader.refuse(f"ADDITEMS to {_brief(target)}: only sets get members")
                reader.check_length(len(target) + len(values), "set")
                reader.add_keys(target, values, "set")
                target.update(values)
                items += len(values)
            elif op == 0x91:  # FROZENSET
                values = stack
                stack = metastack.pop()
                append = stack.append
                append(reader.new_set(values, "frozenset"))
                items += len(values) + 1
            elif op == 0x6c:  # LIST
                values = stack
                stack = metastack.pop()
                append = stack.append
                reader.check_length(len(values), "list")
                append(values)
                items += len(values) + 1
            elif op == 0x64:  # DICT
                values = stack
                stack = metastack.pop()
                append = stack.append
                if len(values) % 2:
                    raise DamagedPickleError(reader.source, f"DICT of an odd number of items at byte {pos - 1}")
                target = {}
                reader.check_length(len(values) // 2, "dict")
                reader.add_keys(target, values[0::2], "dict")
                target.update(zip(values[0::2], values[1::2]))
                append(target)
                items += len(values) + 1
            elif op == 0x63 or op == 0x93:  # GLOBAL, STACK_GLOBAL
                if op == 0x63:
                    module, pos = _line(data, pos)
                    name, pos = _line(data, pos)
                    module, name = module.decode("utf-8"), name.decode("utf-8")
                else:
                    name = stack.pop()
                    module = stack.pop()
                    if type(module) is not str or type(name) is not str:
                        raise reader.refuse("STACK_GLOBAL with a module or name that is not text")
                value = _GLOBALS.get((module, name))
                if value is None:
                    raise reader.refuse(f"refused to load global {_name(module)}.{_name(name)}: this reader admits "
                                        "only numpy arrays and builtin containers, and never runs code from a pickle")
                append(value)
            elif op == 0x80:  # PROTO
                if data[pos] > 5:
                    raise DamagedPickleError(reader.source, f"unsupported pickle protocol {data[pos]} (0-5 are read)")
                pos += 1
            elif op == 0x95:  # FRAME: the length of the next frame; the opcodes inside are read as they come
                pos += 8
            elif op == 0x2e:  # STOP
                if not stack:
                    raise DamagedPickleError(reader.source, f"STOP with nothing to return at byte {pos - 1}")
                if items > max_items:
                    raise reader.over("total_items", f"{items:,} objects")
                return stack[-1]
            elif op == 0x30:  # POP
                if stack:
                    stack.pop()
                else:
                    stack = metastack.pop()
                    append = stack.append
            elif op == 0x31:  # POP_MARK
                stack = metastack.pop()
                append = stack.append
            elif op == 0x32:  # DUP
                append(stack[-1])
            elif op == 0x49 or op == 0x4c or op == 0x46:  # INT, LONG, FLOAT (protocol 0 text)
                line, pos = _line(data, pos)
                if len(line) > 2 * _MAX_INT_BYTES + 2:
                    raise reader.refuse(f"a number written with {len(line)} characters")
                if op == 0x46:
                    append(float(line))
                elif op == 0x49 and line in (b"00", b"01"):
                    append(line == b"01")
                else:
                    append(int(line[:-1] if line.endswith(b"L") else line, 0))
            elif op == 0x53:  # STRING (protocol 0: a quoted Python 2 str)
                line, pos = _line(data, pos)
                reader.check_string(len(line), "string")
                if len(line) < 2 or line[0] != line[-1] or line[0] not in b"\"'":
                    raise DamagedPickleError(reader.source, f"STRING opcode argument must be quoted at byte {pos}")
                append(codecs.escape_decode(line[1:-1])[0].decode("latin1"))
            elif op == 0x56:  # UNICODE (protocol 0)
                line, pos = _line(data, pos)
                reader.check_string(len(line), "string")
                append(line.decode("raw-unicode-escape"))
            elif op == 0x70 or op == 0x67:  # PUT, GET (protocol 0: a decimal index)
                line, pos = _line(data, pos)
                if not line.isdigit() or len(line) > 10:
                    raise DamagedPickleError(reader.source, f"memo index {line[:20]!r} at byte {pos}")
                key = int(line)
                if op == 0x67:
                    append(memo[key])
                else:
                    value = memo[key] = stack[-1]
                    if type(value) in _PENDING:
                        value.slots.append(key)
            elif op in _REFUSED_OPCODES:
                raise reader.refuse(f"refused opcode {_REFUSED_OPCODES[op]} at byte {pos - 1}: it builds objects of "
                                    "other classes or reads data from outside the file")
            else:
                raise DamagedPickleError(reader.source, f"byte 0x{op:02x} at byte {pos - 1} is not a pickle opcode")
            if items > max_items:
                raise reader.over("total_items", f"{items:,} objects")
    except (_Truncated, struct.error):
        raise DamagedPickleError(reader.source, f"truncated: the file ends inside opcode 0x{op:02x} at byte "
                                                f"{pos - 1} of {end}") from None
    except IndexError:
        if pos >= end:
            raise DamagedPickleError(reader.source, f"truncated: the file ends at byte {end} before a STOP opcode") \
                from None
        raise DamagedPickleError(reader.source, f"opcode 0x{op:02x} at byte {pos - 1} finds too few objects on the "
                                                "stack") from None
    except KeyError as e:
        raise DamagedPickleError(reader.source, f"opcode 0x{op:02x} at byte {pos - 1} refers to memo entry {e} that "
                                                "was never stored") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise DamagedPickleError(reader.source, f"opcode 0x{op:02x} at byte {pos - 1}: {_brief(str(e), 160)}") \
            from None
    except TypeError as e:
        raise DamagedPickleError(reader.source, f"opcode 0x{op:02x} at byte {pos - 1}: {_brief(str(e), 160)}") \
            from None


def _name(text: str) -> str:
    """A module or global name of a pickle as it reads, or its repr where it is long or holds odd characters."""
    return text if len(text) <= 100 and text.isprintable() else _brief(text)


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    """The text of protocol 0 from ``pos`` to the next newline (excluded), and the position after it."""
    stop = data.find(b"\n", pos)
    if stop < 0:
        raise _Truncated
    return data[pos:stop], stop + 1


# ----------------------------------------------------------------------------------------------- the result

_CONTAINERS = (list, tuple, dict, set, frozenset)


def _check_result(root, reader: _Reader) -> None:
    """Walk what the pickle built, once per distinct container: every leaf an admitted value (no pending array,
    no bare global), no container that holds itself, nesting within ``limits.depth``, and the result as walked
    (shared containers and arrays counted every time they are reached) within ``total_items`` and
    ``array_bytes``. Linear in the number of distinct objects; never recursive."""
    limits = reader.limits
    done: dict[int, tuple[int, int, int]] = {}  # id -> (depth, items, array bytes) of a finished container
    if type(root) not in _CONTAINERS:
        _check_leaf(root, reader)
        return
    path = [(root, iter(root.values() if type(root) is dict else root), [0, 1 + _keys(root), 0])]
    on_path = {id(root)}
    while path:
        node, children, total = path[-1]
        for child in children:
            kind = type(child)
            if kind in (list, tuple, dict, set, frozenset):
                key = id(child)
                if key in done:
                    depth, n, nbytes = done[key]
                    total[0] = max(total[0], depth)
                    total[1] += n
                    total[2] += nbytes
                    continue
                if key in on_path:
                    raise reader.refuse(f"a {kind.__name__} that contains itself")
                if len(path) >= limits.depth:
                    raise reader.over("depth", f"containers nested more than {limits.depth} deep")
                on_path.add(key)
                path.append((child, iter(child.values() if kind is dict else child), [0, 1 + _keys(child), 0]))
                break
            total[1] += 1
            if kind is np.ndarray:
                total[2] += child.nbytes
            elif kind not in _LEAVES:
                _check_leaf(child, reader)
        else:
            path.pop()
            on_path.discard(id(node))
            result = (total[0] + 1, total[1], total[2])
            if result[1] > limits.total_items:
                raise reader.over("total_items", f"a result of {result[1]:,} objects when walked (shared containers "
                                                 "counted every time they are reached)")
            if result[2] > limits.array_bytes:
                raise reader.over("array_bytes", f"arrays of {result[2]:,} bytes when walked (shared arrays counted "
                                                 "every time they are reached)")
            done[id(node)] = result
            if path:
                parent = path[-1][2]
                parent[0] = max(parent[0], result[0])
                parent[1] += result[1]
                parent[2] += result[2]


_LEAVES = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray, np.ndarray})


def _keys(container) -> int:
    """Objects a container holds that the walk does not visit: a dict's keys (sets hold only scalars)."""
    return len(container) if type(container) is dict else 0


def _check_leaf(value, reader: _Reader) -> None:
    if type(value) in _LEAVES or isinstance(value, (np.generic, np.dtype)):
        return
    if isinstance(value, (_PendingArray, _PendingDtype)):
        raise reader.refuse(f"{value!r} (an array or dtype used before numpy's state was set)")
    raise reader.refuse(f"the result holds {_brief(value)} (a global that was never called)")
