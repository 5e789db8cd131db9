"""A pickle reader that executes nothing.

Pickles are programs: ``pickle.load`` imports and calls whatever the file names. This unpickler resolves only
the handful of globals that numpy arrays and builtin containers need, and refuses everything else before it
is imported or called. Python 2 pickles (Poria et al.'s file was written by Python 2.7) are read with
``encoding='latin1'``.
"""
from __future__ import annotations

import builtins
import codecs
import io
import pickle

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
    # protocol 5 (pickle.HIGHEST_PROTOCOL, pandas.to_pickle) writes arrays as _frombuffer(bytes, dtype, shape,
    # order): a copy out of an in-band buffer. An object dtype cannot come out of a buffer, so nothing else is built.
    ("numpy.core.numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric._frombuffer,
}
for _mod in ("__builtin__", "builtins"):
    for _name in ("set", "frozenset", "list", "dict", "tuple", "str", "bytes", "bytearray", "int", "float", "bool",
                  "complex"):
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
    """Unpickle ``data`` admitting only numpy arrays and builtin containers."""
    return _RestrictedUnpickler(io.BytesIO(data), source=source).load()

