"""Fuzzing the two readers through the command line: randomly corrupted corpus pickles (`mser data summary`) and
transcripts CSVs (`mser features text`). Every input either loads, or fails with the suite's own one-line error
naming the file; never a Python traceback, never a stray file, never code run from a pickle.

The corruptions are drawn with fixed seeds, so a failure names a case that reproduces.
"""
from __future__ import annotations

import copy
import csv
import io
import os
import pickle

import numpy as np
import pytest

from data_utils.corpus import corpus_to_tuple
from mser.cli import main

# A numpy or Python warning would reach a user's terminal as more lines: here it fails the case.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning", "error::DeprecationWarning")

N_PICKLES = 160
N_CSVS = 120


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
    other = [line for line in err.splitlines() if line and not line.startswith(("error: ", "warning: "))]
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
        expected = ["features.pkl", "t.csv"] if code == 0 else ["t.csv"]
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
