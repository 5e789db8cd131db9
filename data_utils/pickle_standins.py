"""The stand-ins for the globals a pickle may name (numpy's reconstructors, ``numpy.dtype``, the builtin
containers and scalars, ``_codecs.encode``), each admitting only the argument shapes real pickles use, and the table
:data:`_GLOBALS` that the interpreter looks names up in. Part of :mod:`data_utils.safe_pickle`."""
from __future__ import annotations

import numpy as np

from .pickle_reader import _NDARRAY, _Global, _PendingArray, _PendingDtype, _Reader, _brief, _is_int, _text

_PLAIN_CODES = frozenset({"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16"})
_PLAIN_WORDS = "plain numbers (bool, int and uint of 8-64 bits, float of 16-64 bits, complex of 64 or 128 bits)"


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
