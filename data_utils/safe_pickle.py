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

The pieces: :mod:`data_utils.pickle_limits` (limits, errors, foreign formats), :mod:`data_utils.pickle_reader` (one
load's budget and checks, the walk over the result), :mod:`data_utils.pickle_standins` (the admitted globals); the
opcode interpreter is here.
"""
from __future__ import annotations

import codecs
import struct

from .pickle_limits import LIMITS_ENV, DamagedPickleError, GiB, Limits, UnsafePickleError, foreign_format
from .pickle_reader import _MAX_INT_BYTES, _PENDING, _Global, _PendingArray, _Reader, _brief, _check_result
from .pickle_standins import _GLOBALS

__all__ = ["GiB", "LIMITS_ENV", "DamagedPickleError", "Limits", "UnsafePickleError", "foreign_format", "safe_loads"]


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
