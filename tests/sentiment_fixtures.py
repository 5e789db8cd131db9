"""Small CMU-MOSI and CMU-MOSEI files in exactly the layouts of Poria et al.'s pickles, written as Python 2.7 and
numpy 1.x wrote them (protocol 2; ``numpy.core.multiarray._reconstruct``; array data and text as Python 2 ``str``,
which Python 3 reads only with ``encoding='latin1'``), with float labels and zero padding. Never a copy of the real
data: the features are random, with a small class signal so that models can learn something.

    python tests/sentiment_fixtures.py OUT_DIR   # writes OUT_DIR/mosi/raw/*_2way.pickle, OUT_DIR/mosei/raw/*.pickle

The tests import :func:`write_mosi` and :func:`write_mosei`.
"""
from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

WIDTHS = {"text": 12, "audio": 73, "video": 20}  # audio 73-wide as the real openSMILE features; the rest smaller
MOSI_SPLITS = {"train": 8, "test": 4}
MOSEI_SPLITS = {"train": 8, "valid": 3, "test": 4}
PADDED = 9  # T: every video padded to this many utterances


# ------------------------------------------------------------------------------------ a Python 2.7-style pickler

def _str(text: str | bytes) -> bytes:
    """A Python 2 ``str``: SHORT_BINSTRING or BINSTRING, its bytes as they are."""
    raw = text.encode("latin1") if isinstance(text, str) else text
    return (b"U" + bytes([len(raw)]) if len(raw) < 256 else b"T" + struct.pack("<i", len(raw))) + raw


def _int(n: int) -> bytes:
    n = int(n)
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def _items(values) -> bytes:
    return b"(" + b"".join(_dump(v) for v in values)


def _array(a: np.ndarray) -> bytes:
    """numpy 1.16's protocol-2 form: ``_reconstruct(ndarray, (0,), 'b')``, then BUILD with
    ``(1, shape, dtype, False, raw)``; the dtype ``dtype('f4', 0, 1)`` with BUILD ``(3, '<', None, None, None, -1,
    -1, 0)``."""
    a = np.ascontiguousarray(a)
    code = {"f": "f", "i": "i", "u": "u"}[a.dtype.kind] + str(a.dtype.itemsize)
    dtype = (b"cnumpy\ndtype\n" + _str(code) + _int(0) + _int(1) + b"\x87R"
             + b"(" + _int(3) + _str("<") + b"NNN" + b"J\xff\xff\xff\xffJ\xff\xff\xff\xff" + _int(0) + b"tb")
    obj = b"cnumpy.core.multiarray\n_reconstruct\n" + b"cnumpy\nndarray\n" + _int(0) + b"\x85" + _str("b") + b"\x87R"
    state = b"(" + _int(1) + _items(a.shape) + b"t" + dtype + b"\x89" + _str(a.tobytes()) + b"t"
    return obj + state + b"b"


def _dump(value) -> bytes:
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, (bool, np.bool_)):
        return b"\x88" if value else b"\x89"
    if isinstance(value, (int, np.integer)):
        return _int(value)
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, str):
        return _str(value)
    if isinstance(value, tuple):
        return _items(value) + b"t"
    if isinstance(value, list):
        return b"]" + (_items(value) + b"e" if value else b"")
    raise TypeError(f"cannot write a {type(value).__name__}")


def py2_pickle(value) -> bytes:
    """``value`` (tuples, lists, ints, floats, str, numpy arrays) as Python 2.7's ``pickle.dump(value, f, 2)``."""
    return b"\x80\x02" + _dump(value) + b"."


# --------------------------------------------------------------------------------------------------- the corpora

def _videos(rng, count: int) -> list[int]:
    lengths = rng.integers(3, PADDED + 1, size=count).tolist()
    lengths[0] = PADDED  # one video fills the padded length
    return lengths


def _split(rng, lengths, modality: str, classes: np.ndarray) -> np.ndarray:
    """(videos, T, D) float32 features, a class signal added, zero at padding."""
    width = WIDTHS[modality]
    data = np.zeros((len(lengths), PADDED, width), np.float32)
    for i, n in enumerate(lengths):
        data[i, :n] = rng.normal(size=(n, width)) + 1.5 * classes[i, :n, None]
    return data


def _sentiment(rng, lengths, *, scores: bool) -> np.ndarray:
    """(videos, T) float sentiment: scores in [-3, 3] (0 for some), or 0/1 classes; 0 at padding."""
    labels = np.zeros((len(lengths), PADDED))
    for i, n in enumerate(lengths):
        labels[i, :n] = np.round(rng.uniform(-3, 3, size=n), 1) if scores else rng.integers(0, 2, size=n)
        if scores:
            labels[i, : n // 3] = 0.0  # neutral utterances, for the 3-way task
    return labels


def mosi_tuple(modality: str, *, seed: int = 0, lengths: dict | None = None) -> tuple:
    """One CMU-MOSI 2-way modality file: ``(train_data, train_label, test_data, test_label, maxlen, train_length,
    test_length)``; the labels (0 = negative, 1 = positive) are the same for every modality of one ``seed``."""
    rng = np.random.default_rng(seed)
    lengths = lengths or {s: _videos(rng, n) for s, n in MOSI_SPLITS.items()}
    labels = {s: _sentiment(rng, lengths[s], scores=False) for s in MOSI_SPLITS}
    feat = np.random.default_rng([seed, sorted(WIDTHS).index(modality)])
    data = {s: _split(feat, lengths[s], modality, labels[s]) for s in MOSI_SPLITS}
    return (data["train"], labels["train"], data["test"], labels["test"], PADDED, lengths["train"], lengths["test"])


def mosei_tuple(modality: str, task: int, *, seed: int = 0) -> tuple:
    """One CMU-MOSEI modality file, the 13-tuple ``(train_data, train_label, valid_data, valid_label, test_data,
    test_label, maxlen, train_length, valid_length, test_length, x, y, z)``: 3-way labels one-hot in upstream's
    column order (negative, positive, neutral), 2-way labels as float sentiment scores."""
    rng = np.random.default_rng(seed)
    lengths = {s: _videos(rng, n) for s, n in MOSEI_SPLITS.items()}
    scores = {s: _sentiment(rng, lengths[s], scores=True) for s in MOSEI_SPLITS}
    feat = np.random.default_rng([seed, sorted(WIDTHS).index(modality)])
    data = {s: _split(feat, lengths[s], modality, (scores[s] > 0).astype(float)) for s in MOSEI_SPLITS}
    if task == 3:
        labels = {}
        for s in MOSEI_SPLITS:
            column = np.where(scores[s] > 0, 1, np.where(scores[s] < 0, 0, 2))
            one_hot = np.eye(3)[column]
            for i, n in enumerate(lengths[s]):
                one_hot[i, n:] = 0.0  # padding: no class
            labels[s] = one_hot
    else:
        labels = scores
    extra = [np.zeros(3), np.zeros((2, 2)), []]  # fields 10-12: not read
    return (data["train"], labels["train"], data["valid"], labels["valid"], data["test"], labels["test"], PADDED,
            lengths["train"], lengths["valid"], lengths["test"], *extra)


def write_mosi(folder, modalities=("text", "audio", "video"), *, seed: int = 0, names=None) -> list[Path]:
    """``folder/{modality}_2way.pickle`` for each of ``modalities`` (``names``: other file names, in order)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, modality in enumerate(modalities):
        path = folder / (names[k] if names else f"{modality}_2way.pickle")
        path.write_bytes(py2_pickle(mosi_tuple(modality, seed=seed)))
        paths.append(path)
    return paths


def write_mosei(folder, modalities=("text", "audio", "video"), *, task: int = 3, seed: int = 0) -> list[Path]:
    """``folder/{modality}_{task}way.pickle`` for each of ``modalities``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for modality in modalities:
        path = folder / f"{modality}_{task}way.pickle"
        path.write_bytes(py2_pickle(mosei_tuple(modality, task, seed=seed)))
        paths.append(path)
    return paths


if __name__ == "__main__":  # pragma: no cover
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "sentiment-fixtures")
    written = write_mosi(out / "mosi" / "raw") + write_mosei(out / "mosei" / "raw")
    print("\n".join(map(str, written)))
