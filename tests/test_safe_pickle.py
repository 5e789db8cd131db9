"""The restricted pickle interpreter (data_utils.safe_pickle) against hostile files built opcode by opcode: nothing
crashes, floods, fills memory or leaks uninitialised bytes, every refusal is one line naming the file; and every
legitimate file (Python 2 and 3, protocols 0-5, pandas, this suite's writer) reads to exactly what pickle reads.

Cases that crashed, hung or took the machine's memory on the old reader run in a subprocess with a memory cap and
a time limit, so a regression fails here instead of taking the test machine down.
"""
from __future__ import annotations

import copy
import gzip
import io
import os
import pickle
import resource
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from _pickle_ops import (ENCODE, FALSE, FROMBUFFER, N, NDARRAY, RECONSTRUCT, SCALAR, SPLICE_MARKER, array, build, by, call, dtype, dtype_state, g, get, i, lst, object_dtype, pickle_of, put, s,
                         splice, t)
from data_utils.corpus import DataFormatError, corpus_from_bytes, corpus_to_bytes, corpus_to_tuple, read_corpus
from data_utils.safe_pickle import DamagedPickleError, Limits, UnsafePickleError, safe_loads

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO.parent / "shared" / "fixtures" / "poria_py2_small.pkl"
MEMORY_CAP = 2 << 30  # address space of a subprocess reading a hostile file
FIRST = "synth_train_000"


@pytest.fixture
def layout(small_corpus):
    return copy.deepcopy(list(corpus_to_tuple(small_corpus)))


# read_corpus as the command line runs it (mser/commands/_common.py): the errors a user can cause become one
# "error:" line and exit 1; anything else is a traceback. Importing the whole CLI costs seconds (scikit-learn).
READ = ("import pickle, sys\n"
        "from data_utils.corpus import read_corpus\n"
        "try:\n    read_corpus(sys.argv[1])\n"
        "except (ValueError, KeyError, FileNotFoundError, pickle.UnpicklingError) as e:\n"
        "    print(f'error: {e}', file=sys.stderr)\n    sys.exit(1)\n")


def _load(path: Path, *, cli: bool = False, timeout: float = 60, env: dict | None = None) -> tuple[int, list[str]]:
    """Read ``path`` in a subprocess capped at :data:`MEMORY_CAP` and ``timeout`` seconds (``cli``: with ``mser data
    summary``, else :data:`READ`): its exit code and stderr lines."""
    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    argv = ["-m", "mser.cli", "data", "summary", "--data"] if cli else ["-c", READ]
    out = subprocess.run([sys.executable, *argv, str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout, preexec_fn=cap, env={**os.environ, **(env or {})})
    return out.returncode, [line for line in out.stderr.splitlines() if line.strip()]


def _assert_one_line_error(path: Path, pattern: str, **kwargs) -> str:
    code, lines = _load(path, **kwargs)
    assert code == 1 and len(lines) == 1 and lines[0].startswith(f"error: {path}: "), (code, lines[:5])
    assert pattern in lines[0], lines[0]
    return lines[0]


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _rows(layout, modality: int = 3):
    return len(layout[0][FIRST]), len(layout[modality][FIRST][0])


# --------------------------------------------------------------------------------------- item 1: segfaults

def _segfault_cases(layout):
    """The six 1-KB files of the fault hunt: an object dtype whose state denies it holds objects, and raw bytes as
    its items, in a feature row, a protocol-5 buffer, the labels, the speakers, a structured dtype and a scalar."""
    n, width = _rows(layout)
    raw = b"A" * 8
    yield "feature row", (3, FIRST, 0), array((width,), object_dtype(), raw * width)
    yield "protocol-5 buffer", (3, FIRST, 0), call(FROMBUFFER, b"\x96" + (8 * width).to_bytes(8, "little") +
                                                   raw * width, object_dtype(), t(i(width)), s("C"))
    yield "labels", (2, FIRST), array((n,), object_dtype(), raw * n)
    yield "speakers", (1, FIRST), array((n,), object_dtype(), raw * n)
    fields = b"}" + s("a") + t(object_dtype(), i(0)) + b"s"
    structured = dtype("V8", dtype_state("|", names=t(s("a")), fields=fields, elsize=8, alignment=1))
    yield "structured dtype", (3, FIRST, 0), array((width,), structured, raw * width)
    yield "numpy scalar", (2, FIRST, 0), call(SCALAR, object_dtype(), by(raw))


def _place(layout, where, value):
    target = layout
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value


@pytest.mark.parametrize("case", ["feature row", "protocol-5 buffer", "labels", "speakers", "structured dtype",
                                  "numpy scalar"])
def test_an_object_dtype_with_raw_pointers_is_refused_not_dereferenced(layout, tmp_path, case):
    where, ops = next((w, o) for name, w, o in _segfault_cases(layout) if name == case)
    _place(layout, where, SPLICE_MARKER)
    path = _write(tmp_path, "evil.pkl", splice(layout, ops))
    _assert_one_line_error(path, "refused numpy dtype", cli=True)  # exit 139 (SIGSEGV) on the old reader


# --------------------------------------------------------------------------------------- item 2: uninitialised

def test_an_array_that_never_received_its_data_is_refused(layout, tmp_path):
    n, width = _rows(layout)
    layout[3][FIRST] = SPLICE_MARKER
    path = _write(tmp_path, "uninit.pkl", splice(layout, call(RECONSTRUCT, NDARRAY, t(i(n), i(width)), by(b"b"))))
    _assert_one_line_error(path, "an array that never received its data")


def test_an_array_used_before_its_data_arrives_is_refused(layout):
    # _reconstruct, memoised, put in a list, then BUILD: the list would hold the empty placeholder
    width = _rows(layout)[1]
    pending = call(RECONSTRUCT, NDARRAY, t(i(0)), by(b"b")) + put(1)
    state = t(i(1), t(i(width)), dtype("f4"), FALSE, by(b"\0" * 4 * width))
    ops = pending + lst(get(1)) + put(2) + b"0" + state + b"b" + b"0" + get(2)  # the list holds the placeholder
    with pytest.raises(UnsafePickleError, match="never received its data"):
        safe_loads(pickle_of(lst(call(RECONSTRUCT, NDARRAY, t(i(0)), by(b"b")))), source="p.pkl")
    with pytest.raises(UnsafePickleError, match="BUILD|never received"):
        safe_loads(pickle_of(ops), source="p.pkl")


# --------------------------------------------------------------------------------------- item 3: bombs

def test_bytes_of_a_huge_count_is_refused_without_allocating(layout, tmp_path):
    layout[1][FIRST] = SPLICE_MARKER  # list(bytes(300_000_000)): 675 bytes that asked for 2.5 GB
    path = _write(tmp_path, "bomb.pkl", splice(layout, call(g("builtins", "list"), call(g("builtins", "bytes"),
                                                                                      i(300_000_000)))))
    _assert_one_line_error(path, "bytes() of 300000000")


@pytest.mark.parametrize("shape", [(10 ** 6, 10 ** 6), (2 ** 40,), (3, -1)])
def test_a_huge_or_negative_shape_is_refused_before_any_allocation(layout, tmp_path, shape):
    layout[3][FIRST][0] = SPLICE_MARKER
    path = _write(tmp_path, "shape.pkl", splice(layout, array(shape, dtype("f8"), b"\0" * 8)))
    _assert_one_line_error(path, "array_bytes" if min(shape) >= 0 else "non-negative")


def test_a_shape_in_reconstruct_is_never_allocated(layout, tmp_path):
    layout[3][FIRST][0] = SPLICE_MARKER
    ops = call(RECONSTRUCT, NDARRAY, t(i(10 ** 7), i(10 ** 6)), by(b"d"))
    path = _write(tmp_path, "shape.pkl", splice(layout, ops))
    _assert_one_line_error(path, "never received its data")


@pytest.mark.parametrize("field", ["trainVid", "videoIDs keys"])
def test_a_hash_flood_is_refused_at_once(layout, tmp_path, field):
    # 50 000 ints of one hash value (multiples of 2**61 - 1): the old reader spent 27-322 s of CPU on them
    # (written opcode by opcode: building such a set here would take as long)
    flood = [i(k * (2 ** 61 - 1)) for k in range(1, 50_001)]
    if field == "trainVid":
        layout[7], ops = SPLICE_MARKER, g("builtins", "set") + t(b"](" + b"".join(flood) + b"e") + b"R"
    else:
        layout[0], ops = SPLICE_MARKER, b"}(" + b"".join(k + lst(s("u")) for k in flood) + b"u"
    path = _write(tmp_path, "flood.pkl", splice(layout, ops))
    _assert_one_line_error(path, "hash flood", timeout=30)


def test_a_flood_of_frozenset_members_and_set_additems_is_refused():
    flood = [i(k * (2 ** 61 - 1)) for k in range(1, 200)]
    with pytest.raises(UnsafePickleError, match="hash flood"):
        safe_loads(pickle_of(b"(" + b"".join(flood) + b"\x91"), source="f.pkl")
    with pytest.raises(UnsafePickleError, match="hash flood"):
        safe_loads(pickle_of(b"\x8f(" + b"".join(flood) + b"\x90"), source="f.pkl")


def test_shared_lists_that_expand_exponentially_are_refused():
    # "billion laughs": each level a list of ten references to the level below; 10**30 entries when walked
    ops = lst(*[i(1)] * 10) + put(0) + b"0"
    for level in range(1, 30):
        ops += lst(*[get(level - 1)] * 10) + put(level) + b"0"
    with pytest.raises(UnsafePickleError, match="total_items"):
        safe_loads(pickle_of(ops + get(29)), source="laughs.pkl")


def test_one_array_referenced_many_times_counts_every_time():
    # an 8 MiB array and 2 000 references to it: 16 GiB for whatever walks the result (np.asarray of the rows)
    ops = array((1 << 20,), dtype("f8"), b"\0" * (8 << 20)) + put(0) + b"0" + lst(*[get(0)] * 2_000)
    with pytest.raises(UnsafePickleError, match="arrays of 16,777,216,000 bytes when walked"):
        safe_loads(pickle_of(ops), source="a.pkl")
    assert len(safe_loads(pickle_of(ops), source="a.pkl", limits=Limits(array_bytes=1 << 35))) == 2_000


def test_a_list_that_holds_itself_is_refused():
    with pytest.raises(UnsafePickleError, match="contains itself"):
        safe_loads(pickle_of(b"]" + put(0) + get(0) + b"a"), source="cycle.pkl")


# --------------------------------------------------------------------------------------- item 4: tracebacks

def test_100000_nested_lists_as_a_speaker_are_one_line(layout, tmp_path):
    layout[1][FIRST][0] = SPLICE_MARKER
    depth = 100_000
    path = _write(tmp_path, "deep.pkl", splice(layout, b"]" * depth + b"a" * (depth - 1)))
    _assert_one_line_error(path, "nested more than 100 deep")


@pytest.mark.parametrize("codec", ["rot13", "no-such-codec", "zlib"])
def test_codecs_encode_with_another_codec_is_one_line(layout, codec):
    layout[6][FIRST][0] = SPLICE_MARKER
    data = splice(layout, call(ENCODE, s("text"), s(codec)))
    with pytest.raises(UnsafePickleError, match=r"^u\.pkl: _codecs\.encode .*admitted only text encoded as latin-1"):
        corpus_from_bytes(data, source="u.pkl")


# --------------------------------------------------------------------------------------- item 5: linear time

def _long_dialogue(layout, n: int, *, duplicate: bool = False):
    layout = layout[:9] + [{"label_names": layout[9]["label_names"]}]
    ids = [f"{FIRST}_{k:06d}" for k in range(n)]
    if duplicate:
        ids[-1] = ids[-2]  # found last: every id is checked before it
    row = np.zeros(2, dtype=np.float32)
    layout[0], layout[1], layout[2] = {FIRST: ids}, {FIRST: ["A", "B"] * (n // 2)}, {FIRST: [0] * n}
    layout[3], layout[4], layout[5], layout[6] = {FIRST: [row] * n}, {}, {}, {FIRST: ["w"] * n}
    layout[7], layout[8] = [FIRST], ["ghost"]
    return layout


def test_a_40000_utterance_dialogue_is_checked_in_linear_time(layout, tmp_path):
    path = _write(tmp_path, "long.pkl", pickle.dumps(tuple(_long_dialogue(layout, 40_000, duplicate=True))))
    # 134 s on the old reader (tuple.count in a loop); well under a second of checking now
    _assert_one_line_error(path, f"utterance id '{FIRST}_039998' is not unique", timeout=30)


def test_a_split_list_with_a_duplicate_is_checked_in_linear_time(layout, tmp_path):
    dialogue_ids = [f"d{k:06d}" for k in range(60_000)]
    layout[7] = dialogue_ids + [dialogue_ids[0]]  # list.count in a loop: minutes on the old reader
    path = _write(tmp_path, "dup.pkl", pickle.dumps(tuple(layout)))
    _assert_one_line_error(path, "is listed twice", timeout=30)


# --------------------------------------------------------------------------------------- item 9 (data paths)

@pytest.mark.parametrize("kind", ["long name", "unreadable", "fifo"])
def test_a_data_path_the_system_refuses_is_one_line(tmp_path, capsys, kind):
    from mser.cli import main

    if kind == "long name":
        path = tmp_path / ("x" * 5000)
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads any file")
        path = _write(tmp_path, "secret.pkl", b"\x80\x04N.")
        path.chmod(0)
    else:
        path = tmp_path / "pipe.pkl"
        os.mkfifo(path)
    code = main(["data", "summary", "--data", str(path)])
    err = [line for line in capsys.readouterr().err.splitlines() if line]
    assert code == 1 and len(err) == 1 and err[0].startswith(f"error: {path}"), err


# --------------------------------------------------------------------------------------- item 19 (loader)

@pytest.mark.parametrize("wrap,hint", [
    (gzip.compress, "looks gzip-compressed: decompress it first (gunzip -c"),
    (lambda d: _zipped(d), "is a zip archive"),
    (lambda d: __import__("bz2").compress(d), "looks bzip2-compressed"),
    (lambda d: __import__("lzma").compress(d), "looks xz-compressed"),
    (lambda d: "dialogue_id,turn\n".encode("utf-16"), "looks like UTF-16 text"),
    (lambda d: "dialogue_id,turn\n".encode("utf-16-le"), "looks like UTF-16 text"),
])
def test_a_compressed_or_utf16_input_says_what_it_is(small_corpus, tmp_path, wrap, hint):
    path = _write(tmp_path, "data.pkl", wrap(corpus_to_bytes(small_corpus)))
    with pytest.raises(DataFormatError, match=r"data\.pkl: not a readable pickle: not a pickle: it ") as info:
        read_corpus(path)
    assert hint in str(info.value)


def _zipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.pkl", data)
    return buf.getvalue()


def test_running_out_of_memory_gives_a_reason(tmp_path):
    """MemoryError has no message: the old reader printed 'MemoryError: ' and nothing else."""
    path = _write(tmp_path, "big.pkl", pickle_of(by(b"\0" * (96 << 20))))
    script = ("import resource, sys\n"
              "from data_utils.corpus import read_corpus\n"
              "size = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()\n"
              "resource.setrlimit(resource.RLIMIT_AS, (size + (150 << 20), size + (150 << 20)))\n"
              "try:\n    read_corpus(sys.argv[1])\nexcept Exception as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert "ran out of memory" in out.stdout and "MemoryError: )" not in out.stdout, (out.stdout, out.stderr[-500:])


@pytest.mark.parametrize("where,value", [
    ((1, FIRST, 0), "M\u200b"), ((1, FIRST, 1), "F\x00"), ((1, FIRST, 0), "\ufeffM"),
    ("label_names", "hap\u200b"), ("dialogue id", "\u200b" + FIRST),
])
def test_invisible_characters_in_names_are_refused(layout, where, value):
    if where == "label_names":
        layout[9]["label_names"] = list(layout[9]["label_names"][:-1]) + [value]
        field = "extras.label_names"
    elif where == "dialogue id":
        for d in layout[:7]:
            d[value] = d.pop(FIRST)
        layout[7] = [value if d == FIRST else d for d in layout[7]]
        layout[9]["validVid"] = [value if d == FIRST else d for d in layout[9]["validVid"]]
        field = "videoIDs"
    else:
        _place(layout, where, value)
        field = "videoSpeakers"
    with pytest.raises(DataFormatError, match=rf"^n\.pkl: .*field {field}: .*holds an invisible character, U\+"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="n.pkl")


def test_whitespace_in_names_is_read_as_before(layout):
    layout[1][FIRST][0] = "Mary Ann"
    corpus = corpus_from_bytes(pickle.dumps(tuple(layout)), source="w.pkl")
    assert corpus.dialogues[FIRST].speakers[0] == "Mary Ann"


# --------------------------------------------------------------------------------------- Build 1: stand-ins

@pytest.mark.parametrize("code,state,found", [
    ("O8", dtype_state("|"), "refused numpy dtype 'O8'"),
    ("V16", dtype_state("|"), "refused numpy dtype 'V16'"),
    ("U4", dtype_state("<"), "refused numpy dtype 'U4'"),
    ("M8", dtype_state("<"), "refused numpy dtype 'M8'"),
    ("f16", dtype_state("<"), "refused numpy dtype 'f16'"),
    ("f8", dtype_state("<", flags=16), "only the plain state"),
    ("f8", dtype_state("<", names=t(s("a"))), "only the plain state"),
    ("f8", dtype_state("<", subarray=t(dtype("f4"), t(i(2)))), "only the plain state"),
    ("f8", dtype_state("<", version=2), "only the plain state"),
    ("f8", dtype_state("?"), "only the plain state"),
    ("f8", dtype_state("<", elsize=16, alignment=8), "element size and alignment"),
])
def test_a_dtype_beyond_plain_numbers_is_refused_naming_what_was_found(code, state, found):
    with pytest.raises(UnsafePickleError, match=r"^d\.pkl: .*" + found.replace("(", r"\(")):
        safe_loads(pickle_of(array((1,), dtype(code, state), b"\0" * 8)), source="d.pkl")


@pytest.mark.parametrize("ops,found", [
    (array((2,), dtype("f8"), b"\0" * 15), "needs exactly 16 bytes of data, the file gives 15"),
    (array((2,), dtype("f8"), b"\0" * 16, version=2), "expected (1, shape, dtype, is_fortran, data)"),
    (build(call(RECONSTRUCT, NDARRAY, t(i(0)), by(b"b")), t(i(1), t(i(1)), dtype("f8"), FALSE, lst(N))),
     "an array of Python objects"),
    (build(call(RECONSTRUCT, g("numpy", "dtype"), t(i(0)), by(b"b")), t()), "only numpy.ndarray"),
    (array((2,), dtype("b1", dtype_state("|")), b"\x00\x07"), "bool array holding bytes other than 0 and 1"),
    (call(SCALAR, dtype("f8"), by(b"\0" * 4)), "needs 8 bytes"),
    (build(array((1,), dtype("f8"), b"\0" * 8), t(i(1), t(i(1)), dtype("f8"), FALSE, by(b"\0" * 8))),
     "BUILD (setting the state of an object) on"),
    (build(lst(), t()), "only numpy arrays and dtypes receive a state"),
    (call(FROMBUFFER, by(b"\0" * 8), dtype("f8"), t(i(1)), s("Q")), "order"),
    (call(g("builtins", "bytes"), s("text")), "bytes() of"),
    (call(g("builtins", "set"), i(3)), "set() of 3"),
    (call(i(3), t()), "REDUCE (a call) of 3"),
    (g("builtins", "list"), "a global that was never called"),
    (b"\x81", "NEWOBJ"), (b"i", "INST"), (b"Q", "BINPERSID"), (b"\x97", "NEXT_BUFFER"), (b"\x82\x01", "EXT1"),
    (g("os", "system"), "refused to load global os.system"),
    (g("numpy", "frombuffer"), "refused to load global numpy.frombuffer"),
    (g("os\x00", "system"), "refused to load global 'os\\x00'.system"),
    (b"\x8a\xff" + b"\x01" * 255, "an integer of 255 bytes"),
])
def test_everything_else_is_refused_in_one_line(ops, found):
    with pytest.raises((UnsafePickleError, DamagedPickleError)) as info:
        safe_loads(pickle_of(ops), source="x.pkl")
    message = str(info.value)
    assert message.startswith("x.pkl: ") and "\n" not in message and found in message, message


@pytest.mark.parametrize("data,found", [
    (b"", "truncated"), (b"\x80\x02", "truncated"), (b"\x80\x02X\xff\xff\x00\x00ab.", "truncated"),
    (b"\x80\x02h\x05.", "memo entry 5"), (b"\x80\x02a.", "too few objects"), (b"\x80\x09N.", "protocol 9"),
    (b"\x80\x02\xff.", "not a pickle opcode"), (b"hello, world\n", "does not look like a pickle"),
    (b"\x80\x02B\xff\xff\xff\x00", "truncated"), (b"\x80\x04\x8e" + (2 ** 62).to_bytes(8, "little"), "string_bytes"),
])
def test_damaged_files_are_one_line(data, found):
    with pytest.raises((DamagedPickleError, UnsafePickleError)) as info:
        safe_loads(data, source="bad.pkl")
    assert str(info.value).startswith("bad.pkl: ") and found in str(info.value), str(info.value)


# --------------------------------------------------------------------------------------- legitimate files

def _same(a, b, path="result"):
    """Equal values of equal types, arrays bit for bit with the same dtype, shape and memory order."""
    assert type(a) is type(b), (path, type(a), type(b))
    if isinstance(a, np.ndarray):
        assert (a.dtype, a.shape, a.tobytes("A")) == (b.dtype, b.shape, b.tobytes("A")), path
        assert a.size == 0 or a.strides == b.strides, path
    elif isinstance(a, np.generic):
        assert (a.dtype, a.tobytes()) == (b.dtype, b.tobytes()), path
    elif isinstance(a, dict):
        assert list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for k, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{k}]")
    elif isinstance(a, float) and a != a:
        assert b != b, path
    else:
        assert a == b, (path, a, b)


def _legitimate_values():
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal((3, 4)).astype(code) for code in ("f2", "f4", "f8", "c8", "c16")]
    arrays += [rng.integers(-100, 100, size=(2, 5)).astype(code) for code in ("i1", "i2", "i4", "i8")]
    arrays += [rng.integers(0, 200, size=(5,)).astype(code) for code in ("u1", "u2", "u4", "u8")]
    arrays += [np.array([True, False, True]), np.arange(6, dtype=">f8").reshape(2, 3), np.arange(6, dtype=">i4"),
               np.asfortranarray(rng.standard_normal((3, 2))), np.zeros((0, 100), np.float32), np.array(2.5),
               np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2), np.arange(10)[::3]]
    scalars = [np.float32(1.5), np.int64(-3), np.uint8(7), np.bool_(True), np.float64("nan"), np.complex64(1 - 2j)]
    shared = [1, 2]
    return [arrays, scalars, {"a": [1, 2.5, None, True, False], "b": (1, "x"), 3: "three", (1, "t"): b"\x00\xff"},
            {1, 2, 3}, frozenset({"a", "b"}), set(), b"", bytearray(b"ab"), "é\u200b\U0001f600", 2 ** 70, -2 ** 63,
            float("inf"), 1e-310, complex(1, -1), (), [[[]]], [shared, shared], ("dup", "dup"),
            {"text": {"d1": [np.arange(4, dtype=np.float32)] * 3}}]


@pytest.mark.parametrize("protocol", range(6))
def test_every_legitimate_value_reads_as_pickle_reads_it(protocol):
    for value in _legitimate_values():
        data = pickle.dumps(value, protocol=protocol)
        _same(safe_loads(data, source="ok.pkl"), pickle.loads(data), f"protocol {protocol}: {value!r}"[:80])


def test_shared_references_stay_shared():
    shared = [1]
    value = safe_loads(pickle.dumps([shared, shared], protocol=4), source="s.pkl")
    assert value[0] is value[1]


def test_python2_pandas_and_our_own_files_read_as_pickle_reads_them(small_corpus, tmp_path):
    import pandas as pd

    files = {"ours": corpus_to_bytes(small_corpus), "p5": pickle.dumps(corpus_to_tuple(small_corpus), protocol=5)}
    pd.to_pickle(corpus_to_tuple(small_corpus), tmp_path / "pandas.pkl")
    files["pandas"] = (tmp_path / "pandas.pkl").read_bytes()
    if FIXTURE.is_file():
        files["python 2.7 + numpy 1.16"] = FIXTURE.read_bytes()
    for name, data in files.items():
        _same(safe_loads(data, source=name), pickle.loads(data, encoding="latin1"), name)


# --------------------------------------------------------------------------------------- Build 2: limits

def test_limits_are_named_with_how_to_raise_them(layout, tmp_path):
    path = _write(tmp_path, "c.pkl", pickle.dumps(tuple(layout)))
    line = _assert_one_line_error(path, "beyond the reader's limit dialogues=5", cli=True,
                                  env={"MSER_LOAD_LIMITS": "dialogues=5"})
    assert "MSER_LOAD_LIMITS='dialogues=N'" in line and "limits=Limits(dialogues=N)" in line
    n = len(layout[0])
    assert len(read_corpus(path, limits=Limits(dialogues=n)).dialogues) == n
    with pytest.raises(DataFormatError, match="utterances"):
        read_corpus(path, limits=Limits(utterances=10))
    with pytest.raises(DataFormatError, match="file_bytes"):
        read_corpus(path, limits=Limits(file_bytes=100))
    with pytest.raises(UnsafePickleError, match="container_items"):
        read_corpus(path, limits=Limits(container_items=3))


@pytest.mark.parametrize("text,expected", [
    ("", Limits()), ("array_bytes=16e9", Limits(array_bytes=16 * 10 ** 9)),
    (" file_bytes = 1_000 , depth=7 ", Limits(file_bytes=1000, depth=7)),
])
def test_the_environment_variable_raises_limits(text, expected):
    assert Limits.from_env({"MSER_LOAD_LIMITS": text}) == expected


@pytest.mark.parametrize("text", ["bogus=1", "depth", "depth=0", "depth=1.5", "depth=lots", "depth=1e300"])
def test_a_malformed_environment_variable_is_one_line(text):
    with pytest.raises(ValueError, match=r"^MSER_LOAD_LIMITS: "):
        Limits.from_env({"MSER_LOAD_LIMITS": text})


def test_the_defaults_are_far_above_real_corpora():
    limits = Limits()
    assert limits.dialogues >= 100 * 151 and limits.utterances >= 100 * 23_000
    assert limits.array_bytes >= 4 * 10 ** 9 and limits.file_bytes >= 4 * 10 ** 9 and limits.depth >= 20
