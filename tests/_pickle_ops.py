"""Pickles written opcode by opcode, as a hostile file would be (used by test_safe_pickle and test_fuzz_inputs).

Each function returns the opcodes that push one object; :func:`pickle_of` makes them a file, :func:`splice` puts them
in place of one value of a real corpus pickle. Memo indices used here start at 1 000 000, clear of the pickler's.
"""
from __future__ import annotations

import pickle
import struct

N, TRUE, FALSE = b"N", b"\x88", b"\x89"
RECONSTRUCT = b"cnumpy._core.multiarray\n_reconstruct\n"
NDARRAY = b"cnumpy\nndarray\n"
DTYPE = b"cnumpy\ndtype\n"
SCALAR = b"cnumpy._core.multiarray\nscalar\n"
FROMBUFFER = b"cnumpy._core.numeric\n_frombuffer\n"
ENCODE = b"c_codecs\nencode\n"
SPLICE_MARKER = "\x00spliced value\x00"


def i(n: int) -> bytes:
    if -2 ** 31 <= n < 2 ** 31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def s(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


def by(data: bytes) -> bytes:
    return b"B" + struct.pack("<I", len(data)) + data


def g(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def t(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"


def lst(*items: bytes) -> bytes:
    return b"](" + b"".join(items) + b"e"


def call(func: bytes, *args: bytes) -> bytes:
    return func + t(*args) + b"R"


def build(obj: bytes, state: bytes) -> bytes:
    return obj + state + b"b"


def put(index: int) -> bytes:
    return b"r" + struct.pack("<I", 1_000_000 + index)


def get(index: int) -> bytes:
    return b"j" + struct.pack("<I", 1_000_000 + index)


def dtype_state(byteorder="<", subarray=N, names=N, fields=N, elsize=-1, alignment=-1, flags=0, version=3) -> bytes:
    return t(i(version), s(byteorder), subarray, names, fields, i(elsize), i(alignment), i(flags))


def dtype(code: str, state: bytes | None = None) -> bytes:
    """``numpy.dtype(code, False, True)`` given ``state`` (numpy's own for a little-endian number by default)."""
    return build(call(DTYPE, s(code), FALSE, TRUE), dtype_state() if state is None else state)


def array(shape, dtype_ops: bytes, raw: bytes, *, version: int = 1, fortran: bytes = FALSE) -> bytes:
    """numpy's own protocol-2 form of an array: ``_reconstruct(ndarray, (0,), b'b')`` then BUILD with its state."""
    return build(call(RECONSTRUCT, NDARRAY, t(i(0)), by(b"b")),
                 t(i(version), t(*map(i, shape)), dtype_ops, fortran, by(raw)))


def object_dtype() -> bytes:
    """An object dtype ``O8`` whose state (version 3, flags 0) denies it holds Python objects: numpy then takes raw
    bytes for its items, and reading one dereferences them as a pointer."""
    return dtype("O8", dtype_state("|", elsize=8, alignment=8, flags=0))


def pickle_of(ops: bytes) -> bytes:
    return b"\x80\x02" + ops + b"."


def splice(layout, ops: bytes) -> bytes:
    """``layout`` (a corpus tuple as a list, one value set to :data:`SPLICE_MARKER`) pickled with protocol 2, the
    marker's opcodes replaced by ``ops``."""
    data = pickle.dumps(tuple(layout), protocol=2)
    raw = SPLICE_MARKER.encode()
    marker = b"X" + struct.pack("<I", len(raw)) + raw
    assert data.count(marker) == 1
    return data.replace(marker, ops)
