"""One load's budget and checks (:class:`_Reader`), the placeholders a pickle builds before numpy's state arrives,
and the walk over the finished result (:func:`_check_result`). Part of :mod:`data_utils.safe_pickle`."""
from __future__ import annotations

import math

import numpy as np

from .pickle_limits import Limits, UnsafePickleError

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
