"""Fuzzing the two readers through the command line: randomly corrupted corpus pickles (`mser data summary`) and
transcripts CSVs (`mser features text`), and hostile pickles written opcode by opcode (numpy reconstructor states,
dtype states, shapes, nesting, hash floods, size bombs), read in a subprocess under a memory cap so that a
regression fails here instead of taking the machine down. Every input either loads, or fails with the suite's own
one-line error naming the file; never a Python traceback, a crash, a stray file, or code run from a pickle.

The corruptions are drawn with fixed seeds, so a failure names a case that reproduces.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import os
import pickle
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_utils.corpus import corpus_to_tuple
from mser.cli import main

# A numpy or Python warning would reach a user's terminal as more lines: here it fails the case.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning", "error::DeprecationWarning")

import _pickle_ops as op  # noqa: E402

N_PICKLES = 160
N_CSVS = 120
N_HOSTILE = 180
MEMORY_CAP = 5 << 29  # 2.5 GiB of address space for the subprocess that reads the hostile pickles
REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """Unpickled by plain ``pickle``, this would create ``target``: the readers must never let it run."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _run(argv, capsys) -> tuple[int, str]:
    """The CLI in this process (so 280 cases take seconds): its exit code and stderr. An exception escaping
    ``main`` is exactly the traceback a user must never see, so it fails the test with the case's name."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _check_outcome(code: int, err: str, source, case: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    other = [line for line in err.splitlines() if line and not line.startswith(("error: ", "warning: ", "note: "))]
    assert not other, f"{case}: unexpected stderr {other[:3]}"
    if code == 0:
        assert not errors, case
    else:
        assert code == 1 and len(errors) == 1, f"{case}: exit {code}, stderr {err!r}"
        assert errors[0].startswith(f"error: {source}"), f"{case}: the error does not name the file: {errors[0]}"


# --------------------------------------------------------------------------------------------------- pickles

def _mutate_tuple(layout: list, rng: np.random.Generator, target) -> str:
    """Corrupt the structure of a Poria layout in place; returns what was done."""
    kind = rng.choice(["swap", "type", "value", "length", "labels", "payload", "drop", "split"])
    dialogues = sorted(layout[0])
    did = dialogues[int(rng.integers(len(dialogues)))]
    junk = [None, 3, "text", 2.5, [], {}, [1, 2], {"a": 1}, b"\x00", (1,), {1, 2}, True][int(rng.integers(12))]
    if kind == "swap":
        i, j = rng.choice(len(layout), size=2, replace=False)
        layout[i], layout[j] = layout[j], layout[i]
        return f"swapped fields {i} and {j}"
    if kind == "type":
        i = int(rng.integers(len(layout)))
        if isinstance(layout[i], dict) and layout[i] and rng.random() < 0.5:
            key = did if did in layout[i] else next(iter(layout[i]))
            layout[i][key] = junk
            return f"field {i} dialogue {key}: {junk!r}"
        layout[i] = junk
        return f"field {i}: {junk!r}"
    if kind == "value":
        m = int(rng.integers(3, 6))
        rows = layout[m].get(did)
        if not rows:
            return "no-op"
        row = np.array(rows[int(rng.integers(len(rows)))], dtype=np.float64)
        row[int(rng.integers(row.size))] = [np.nan, np.inf, -np.inf, 1e39, -1e300, 0.0][int(rng.integers(6))]
        rows[int(rng.integers(len(rows)))] = row
        return f"feature value in field {m}"
    if kind == "length":
        i = int(rng.integers(7))
        if did in layout[i] and isinstance(layout[i][did], list):
            if rng.random() < 0.5 and layout[i][did]:
                layout[i][did].pop()
            else:
                layout[i][did].append(copy.deepcopy(layout[i][did][0]) if layout[i][did] else 0)
        return f"length of field {i}"
    if kind == "labels":
        value = [-1, 6, 10**12, 1.0, "hap", None, np.int64(2), True][int(rng.integers(8))]
        layout[2][did][int(rng.integers(len(layout[2][did])))] = value
        return f"label {value!r}"
    if kind == "payload":
        i = int(rng.integers(len(layout)))
        if isinstance(layout[i], dict) and layout[i]:
            layout[i][next(iter(layout[i]))] = _Payload(target)
        else:
            layout[i] = [_Payload(target)]
        return f"code in field {i}"
    if kind == "drop":
        i = int(rng.integers(len(layout)))
        del layout[i]
        return f"dropped field {i}"
    layout[7 + int(rng.integers(2))] = [junk] if rng.random() < 0.5 else [did, did]
    return "split list"


def _corrupt_bytes(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    if rng.random() < 0.5:
        cut = int(rng.integers(len(data)))
        return data[:cut], f"truncated at {cut}"
    buf = bytearray(data)
    flips = int(rng.integers(1, 9))
    for _ in range(flips):
        buf[int(rng.integers(len(buf)))] ^= 1 << int(rng.integers(8))
    return bytes(buf), f"{flips} bit flips"


def test_corrupted_pickles_load_or_fail_with_one_line(small_corpus, tmp_path, capsys):
    base = list(corpus_to_tuple(small_corpus))
    target = tmp_path / "pwned"
    rng = np.random.default_rng(20261130)
    loaded = 0
    for n in range(N_PICKLES):
        layout = copy.deepcopy(base)
        what = _mutate_tuple(layout, rng, target) if rng.random() < 0.6 else "intact"
        data = pickle.dumps(tuple(layout), protocol=int(rng.choice([2, 4, 5])))
        if what == "intact" or rng.random() < 0.3:
            data, how = _corrupt_bytes(data, rng)
            what += f", {how}"
        folder = tmp_path / f"p{n:03d}"
        folder.mkdir()
        path = folder / "corpus.pkl"
        path.write_bytes(data)
        case = f"pickle case {n} ({what})"
        code, err = _run(["data", "summary", "--data", path], capsys)
        _check_outcome(code, err, path, case)
        loaded += code == 0
        assert sorted(p.name for p in folder.iterdir()) == ["corpus.pkl"], case
        assert not target.exists(), f"{case}: code from the pickle ran"
    assert 0 < loaded < N_PICKLES  # the corruptions are neither all harmless nor all fatal


# --------------------------------------------------------------------------------------------------- CSVs

HEADER = ["dialogue_id", "turn", "speaker", "label", "split", "text"]
WORDS = "the day was long and we talked about the weather the house the plan and the trip".split()


def _base_rows(rng: np.random.Generator) -> list[list[str]]:
    rows = []
    for d, split in enumerate(["train"] * 4 + ["test"] * 2):
        for turn in range(4):
            text = " ".join(rng.choice(WORDS, size=6))
            rows.append([f"dlg{d}", str(turn), "AB"[turn % 2], ["neu", "hap", "sad", "ang"][(d + turn) % 4], split,
                         text])
    return rows


def _corrupt_csv(rng: np.random.Generator) -> tuple[bytes, str]:
    header, rows = list(HEADER), _base_rows(rng)
    kind = rng.choice(["cell", "swap", "drop-cell", "header", "bytes", "truncate", "quote", "huge", "empty"])
    r, c = int(rng.integers(len(rows))), int(rng.integers(len(header)))
    if kind == "cell":
        rows[r][c] = ["", " ", "nan", "-1", "1e9", "3.5", "xxx", "Hap", "valid", "\x00", "é" * 3][int(rng.integers(11))]
    elif kind == "swap":
        i, j = rng.choice(len(header), size=2, replace=False)
        for row in rows:
            row[i], row[j] = row[j], row[i]
    elif kind == "drop-cell":
        del rows[r][c]
    elif kind == "header":
        header[c] = ["", "Dialogue_ID", "turn", "text", "label "][int(rng.integers(5))]
    elif kind == "huge":
        rows[r][5] = "word " * int(rng.integers(30_000, 60_000))
    elif kind == "empty":
        return b"" if rng.random() < 0.5 else b"\xef\xbb\xbf", "empty file"
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    data = out.getvalue().encode("utf-8")
    if kind == "bytes":
        buf = bytearray(data)
        for _ in range(int(rng.integers(1, 6))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
        data = bytes(buf)
    elif kind == "truncate":
        data = data[:int(rng.integers(len(data)))]
    elif kind == "quote":
        data = data.replace(b",", b',"', 1 + int(rng.integers(3)))
    return data, f"{kind} (row {r}, column {c})"


def test_corrupted_transcripts_load_or_fail_with_one_line(tmp_path, capsys):
    rng = np.random.default_rng(11302026)
    built = 0
    for n in range(N_CSVS):
        data, what = _corrupt_csv(rng)
        folder = tmp_path / f"c{n:03d}"
        folder.mkdir()
        path, out = folder / "t.csv", folder / "features.pkl"
        path.write_bytes(data)
        case = f"CSV case {n} ({what})"
        code, err = _run(["features", "text", "--transcripts", path, "--out", out, "--dim", "4"], capsys)
        _check_outcome(code, err, path, case)
        built += code == 0
        # the features with their saved extractor, or nothing at all
        expected = ["features.pkl", "features.text-extractor.json", "features.text-extractor.npz", "t.csv"] \
            if code == 0 else ["t.csv"]
        assert sorted(p.name for p in folder.iterdir()) == expected, case
    assert 0 < built < N_CSVS


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_payload_in_a_pickle_never_runs(small_corpus, tmp_path, capsys, protocol):
    """The fuzz test's "never code executed" is meaningful: the same bytes through plain pickle do run it."""
    target = tmp_path / "pwned"
    layout = list(corpus_to_tuple(small_corpus))
    layout[7] = [_Payload(target)]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(tuple(layout), protocol=protocol))
    code, err = _run(["data", "summary", "--data", path], capsys)
    assert code == 1 and "refused to load global posix.system" in err and not target.exists()
    pickle.loads(path.read_bytes())
    assert target.exists()


# --------------------------------------------------------------------------------------------------- hostile pickles

def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _raw(rng: np.random.Generator, need: int) -> bytes:
    """Array data of exactly ``need`` bytes, or (a third of the time) a few bytes more or fewer."""
    n = need if rng.random() < 0.66 else max(0, need + int(rng.integers(-9, 9)))
    return bytes(rng.integers(0, 256, size=min(n, 1 << 16), dtype=np.uint8)) + b"\0" * max(0, n - (1 << 16))


def _reconstructor_state(rng: np.random.Generator) -> bytes:
    width = int(rng.integers(1, 6))
    shape = op.t(op.i(width))
    dtype = op.dtype(_pick(rng, ["f4", "f8", "i8", "b1"]), op.dtype_state(_pick(rng, ["<", "|"])))
    raw = op.by(_raw(rng, 8 * width))
    version, fortran = op.i(_pick(rng, [1, 1, 1, 0, 2, -1])), _pick(rng, [op.FALSE, op.TRUE, op.i(2), op.s("F")])
    state = _pick(rng, [op.t(version, shape, dtype, fortran, raw), op.t(shape, dtype, fortran, raw),
                        op.t(version, shape, dtype, fortran, op.lst(op.N)), op.t(version, shape, dtype, fortran,
                                                                               op.s("\x00" * 8 * width)),
                        op.t(version, op.s("shape"), dtype, fortran, raw), op.t(version, shape, op.i(3), fortran, raw),
                        op.t()])
    pending = op.call(op.RECONSTRUCT, _pick(rng, [op.NDARRAY, op.NDARRAY, op.DTYPE]),
                      op.t(op.i(int(rng.integers(0, 10 ** 6)))), op.by(b"b"))
    how = _pick(rng, ["built", "no BUILD", "twice"])
    ops = pending if how == "no BUILD" else op.build(pending, state)
    return op.build(ops, state) if how == "twice" else ops


def _dtype_state(rng: np.random.Generator) -> bytes:
    code = _pick(rng, ["f4", "f8", "i8", "u1", "b1", "c16", "f2", "O8", "O", "V8", "U2", "S4", "M8", "f16", "<f4", ""])
    fields = b"}" + op.s("a") + op.t(op.object_dtype(), op.i(0)) + b"s"
    state = op.dtype_state(_pick(rng, ["<", ">", "|", "=", "?"]),
                           subarray=_pick(rng, [op.N] * 4 + [op.t(op.dtype("f4"), op.t(op.i(2)))]),
                           names=_pick(rng, [op.N] * 4 + [op.t(op.s("a"))]),
                           fields=_pick(rng, [op.N] * 4 + [fields]),
                           elsize=_pick(rng, [-1, -1, 8, 16, 0]), alignment=_pick(rng, [-1, -1, 8, 1]),
                           flags=_pick(rng, [0, 0, 0, 1, 16, 63]), version=_pick(rng, [3, 3, 4, 2]))
    dtype = op.dtype(code, state)
    if rng.random() < 0.3:
        return op.call(op.SCALAR, dtype, op.by(_raw(rng, 8)))
    return op.array((4,), dtype, _raw(rng, 32))


def _shape(rng: np.random.Generator) -> bytes:
    shape = _pick(rng, [(), (0,), (4,), (0, 4), (10 ** 9,), (2 ** 31,) * 3, (1,) * 40, (-1,), (3, -4), (2 ** 63,)])
    itemsize = _pick(rng, [4, 8])
    count = int(np.prod(shape)) if all(n >= 0 for n in shape) else 0
    raw = _raw(rng, itemsize * count) if count * itemsize < 1 << 20 else _raw(rng, 64)
    if rng.random() < 0.3:
        buffer = b"\x96" + len(raw).to_bytes(8, "little") + raw
        return op.call(op.FROMBUFFER, buffer, op.dtype(f"f{itemsize}"), op.t(*map(op.i, shape)),
                       op.s(_pick(rng, ["C", "F", "K"])))
    return op.array(shape, op.dtype(f"f{itemsize}"), raw)


def _nesting(rng: np.random.Generator) -> bytes:
    kind = _pick(rng, ["deep", "cycle", "laughs", "dict cycle"])
    if kind == "deep":
        depth = _pick(rng, [50, 99, 101, 5000, 100_000])
        return b"]" * depth + b"a" * (depth - 1)
    if kind == "cycle":
        return b"]" + op.put(0) + op.get(0) + b"a"
    if kind == "dict cycle":
        return b"}" + op.put(0) + op.s("self") + op.get(0) + b"s"
    ops = op.lst(*[op.i(1)] * 10) + op.put(0) + b"0"
    levels = int(rng.integers(3, 30))
    for level in range(1, levels):
        ops += op.lst(*[op.get(level - 1)] * 10) + op.put(level) + b"0"
    return ops + op.get(levels - 1)


def _hash_flood(rng: np.random.Generator) -> bytes:
    n = _pick(rng, [100, 1000, 20_000])
    keys = [op.i(k * (2 ** 61 - 1)) for k in range(1, n + 1)]
    if rng.random() < 0.2:
        keys = [op.t(k) for k in keys]
    kind = _pick(rng, ["set", "frozenset", "additems", "dict"])
    if kind == "set":
        return op.call(op.g("builtins", "set"), b"](" + b"".join(keys) + b"e")
    if kind == "frozenset":
        return b"(" + b"".join(keys) + b"\x91"
    if kind == "additems":
        return b"\x8f(" + b"".join(keys) + b"\x90"
    return b"}(" + b"".join(k + op.N for k in keys) + b"u"


def _size_bomb(rng: np.random.Generator) -> bytes:
    n = _pick(rng, [300_000_000, 10 ** 12, 2 ** 62])
    return _pick(rng, [
        op.call(op.g("builtins", "list"), op.call(op.g("builtins", "bytes"), op.i(n))),
        op.call(op.g("builtins", "bytes"), op.i(n)),
        op.call(op.g("builtins", "bytearray"), op.i(n)),
        b"\x8b" + (2 ** 31 - 1).to_bytes(4, "little") + b"\x01" * 8,  # LONG4 of 2 GiB
        b"\x8e" + n.to_bytes(8, "little") + b"x" * 8,  # BINBYTES8
        b"\x8d" + n.to_bytes(8, "little") + b"x" * 8,  # BINUNICODE8
        b"\x96" + n.to_bytes(8, "little") + b"x" * 8,  # BYTEARRAY8
        op.call(op.ENCODE, op.s("x" * 64), op.s(_pick(rng, ["latin1", "rot13", "bz2", "utf-16"]))),
        op.call(op.SCALAR, op.dtype("f8"), op.by(b"\0" * 8)) + op.put(0) + b"0" + op.lst(*[op.get(0)] * 50_000),
        op.array((1 << 17,), op.dtype("f8"), b"\0" * (8 << 17)) + op.put(0) + b"0" + op.lst(*[op.get(0)] * 10_000),
        b"(" * 200_000 + b"]",  # marks
    ])


HOSTILE = {"numpy reconstructor state": _reconstructor_state, "dtype state": _dtype_state, "shape": _shape,
           "nesting": _nesting, "hash flood": _hash_flood, "size bomb": _size_bomb}


def _place_hostile(layout: list, rng: np.random.Generator) -> tuple[list, str]:
    """The corpus layout with one value replaced by the splice marker; where, in words."""
    dialogue = sorted(layout[0])[0]
    where = _pick(rng, ["feature row", "features", "labels", "label", "speakers", "speaker", "trainVid", "videoIDs",
                        "extras", "sentence"])
    if where == "feature row":
        layout[3][dialogue][0] = op.SPLICE_MARKER
    elif where in ("features", "labels", "speakers"):
        layout[{"features": 4, "labels": 2, "speakers": 1}[where]][dialogue] = op.SPLICE_MARKER
    elif where in ("label", "speaker", "sentence"):
        layout[{"label": 2, "speaker": 1, "sentence": 6}[where]][dialogue][0] = op.SPLICE_MARKER
    elif where == "trainVid":
        layout[7] = op.SPLICE_MARKER
    elif where == "videoIDs":
        layout[0] = op.SPLICE_MARKER
    else:
        layout[9]["description"] = op.SPLICE_MARKER
    return layout, where


# Runs in the capped subprocess: each case through the CLI in one process, its exit code and stderr as a JSON line
# (after a "start" line, so a crash names its case), then whether TensorFlow was imported.
_RUNNER = """
import contextlib, io, json, sys, time, traceback
from mser.cli import main
for path in json.load(open(sys.argv[1])):
    print(json.dumps({"start": path}), flush=True)
    err, t = io.StringIO(), time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["data", "summary", "--data", path])
    except BaseException:
        code, err = "exception", io.StringIO(traceback.format_exc())
    print(json.dumps({"path": path, "code": code, "err": err.getvalue(), "seconds": time.perf_counter() - t}),
          flush=True)
print(json.dumps({"tensorflow": "tensorflow" in sys.modules}), flush=True)
"""


def test_hostile_pickles_are_refused_in_one_line_under_a_memory_cap(small_corpus, tmp_path):
    base = list(corpus_to_tuple(small_corpus))
    rng = np.random.default_rng(20261202)
    cases = {}
    families = list(HOSTILE)
    for n in range(N_HOSTILE):
        family = families[n % len(families)]
        ops = HOSTILE[family](rng)
        path = tmp_path / f"h{n:03d}.pkl"
        if rng.random() < 0.25:
            path.write_bytes(op.pickle_of(ops))
            where = "the whole file"
        else:
            layout, where = _place_hostile(copy.deepcopy(base), rng)
            path.write_bytes(op.splice(layout, ops))
        cases[str(path)] = f"hostile case {n} ({family}, as {where})"
    listing = tmp_path / "cases.json"
    listing.write_text(json.dumps(list(cases)))

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    out = subprocess.run([sys.executable, "-c", _RUNNER, str(listing)], cwd=REPO, capture_output=True, text=True,
                         timeout=300, preexec_fn=cap)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    started = [r["start"] for r in records if "start" in r]
    assert out.returncode == 0, (f"the reader died (exit {out.returncode}) in {cases.get(started[-1] if started else '')}"
                                 f": {out.stderr[-2000:]}")
    results = [r for r in records if "path" in r]
    assert len(results) == N_HOSTILE
    for r in results:
        case = cases[r["path"]]
        assert r["code"] != "exception", f"{case}: {r['err']}"
        _check_outcome(r["code"], r["err"], r["path"], case)
        assert r["seconds"] < 20, f"{case}: {r['seconds']:.1f} s"
    assert records[-1] == {"tensorflow": False}  # `mser data summary` never imports TensorFlow
