"""A pickle reader that executes nothing.

Pickles are programs: ``pickle.load`` imports and calls whatever the file names. This unpickler resolves only
the handful of globals that numpy arrays and builtin containers need, and refuses everything else before it
is imported or called. Python 2 pickles (Poria et al.'s file was written by Python 2.7) are read with
``encoding='latin1'``.
"""
from __future__ import annotations

import builtins
import codecs
import contextlib
import io
import pickle
import sys

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asks for something other than numpy arrays and builtin containers."""


# (module, name) as written in the pickle -> the object to use. Py2 names and numpy<2 module paths included.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("numpy.core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy._core.multiarray", "scalar"): _multiarray.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


def _frombuffer(buf, dtype, shape, order, axis_order=None):
    """numpy's protocol-5 array constructor, over a copy of the buffer: an array that holds on to the unpickler's
    bytearray makes CPython print a SystemError when a failed load frees it. An object dtype cannot come out of a
    buffer, so nothing but numbers is built."""
    return _numeric._frombuffer(bytes(buf), dtype, shape, order, axis_order)


# protocol 5 (pickle.HIGHEST_PROTOCOL, pandas.to_pickle) writes arrays as _frombuffer(buffer, dtype, shape, order)
_ALLOWED[("numpy.core.numeric", "_frombuffer")] = _frombuffer
_ALLOWED[("numpy._core.numeric", "_frombuffer")] = _frombuffer
for _mod in ("__builtin__", "builtins"):
    for _name in ("set", "frozenset", "list", "dict", "tuple", "str", "bytes", "int", "float", "bool", "complex"):
        _ALLOWED[(_mod, _name)] = getattr(builtins, _name)
# Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1'): a pure function.
_ALLOWED[("_codecs", "encode")] = codecs.encode
_ALLOWED[("__builtin__", "unicode")] = str
_ALLOWED[("__builtin__", "long")] = int


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, *, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module, name):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self._source}: refused to load global {module}.{name}: this reader admits only numpy arrays "
                "and builtin containers, and never runs code from a pickle"
            )
        return obj

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self._source}: refused persistent id {pid!r}")


def safe_loads(data: bytes, *, source: str = "<bytes>"):
    """Unpickle ``data`` admitting only numpy arrays and builtin containers.

    Raises :class:`UnsafePickleError` for anything else, and what ``pickle`` raises for a damaged file.
    """
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            return _RestrictedUnpickler(io.BytesIO(data), source=source).load()
    finally:
        _forward(stderr.getvalue())


# CPython's C unpickler, failing to allocate a protocol-5 bytearray whose length a damaged file inflated, frees it
# with a buffer still exported, and the interpreter prints this SystemError (with PyErr_Print, to sys.stderr)
# besides the MemoryError the load raises. The MemoryError is reported, as a damaged file; the stray print is not.
_STRAY = "SystemError: deallocated bytearray object has exported buffers"


def _forward(text: str) -> None:
    lines = [line for line in text.splitlines() if line.strip() and line.strip() != _STRAY]
    if lines:
        print("\n".join(lines), file=sys.stderr)
