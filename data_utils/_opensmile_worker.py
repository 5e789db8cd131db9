"""openSMILE worker: ``python -m data_utils._opensmile_worker REQUEST.json``, run by ``audio_features``.

It runs in its own process because openSMILE crashes in a process that imported TensorFlow first, so this module
imports nothing that imports TensorFlow (only the standard library, numpy and, lazily, opensmile).

The request is a JSON object ``{"feature_set": openSMILE FeatureSet name, "wavs": [paths], "matrix": npy path,
"result": json path, "current": text path}``; before each wav the worker writes its path to ``current``, so that a
crash (openSMILE's C code can take the process down) is blamed on the file it was reading. On success the worker writes the float32 matrix (one row per wav, in request order) to
``matrix``, ``{"order": [paths]}`` to ``result`` and exits 0. On failure it writes ``{"error": message,
"wav": path or null, "missing_extra": bool}`` to ``result`` and exits 1.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


class WorkerError(Exception):
    def __init__(self, message: str, *, wav: str | None = None, missing_extra: bool = False):
        super().__init__(message)
        self.wav, self.missing_extra = wav, missing_extra


def _smile(feature_set: str):
    try:
        import opensmile
    except ImportError as e:
        raise WorkerError(f"cannot import opensmile ({e})", missing_extra=True) from e
    if not hasattr(opensmile.FeatureSet, feature_set):
        raise WorkerError(f"opensmile has no feature set {feature_set!r}")
    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                           feature_level=opensmile.FeatureLevel.Functionals)


def _functionals(smile, wav: str) -> np.ndarray:
    try:
        rows = np.asarray(smile.process_file(wav), dtype=np.float64)
    except Exception as e:  # openSMILE and libsndfile raise many kinds; all mean "this file failed"
        raise WorkerError(f"openSMILE could not process it ({type(e).__name__}: {e})", wav=wav) from e
    if rows.ndim != 2 or rows.shape[0] != 1:
        raise WorkerError(f"expected one row of functionals, got an array of shape {rows.shape}", wav=wav)
    return rows[0]


def extract(feature_set: str, wavs: list[str], current: Path | None = None) -> np.ndarray:
    """One row of ``feature_set`` functionals per wav, as float32; each wav's path is written to ``current`` first."""
    smile = _smile(feature_set)
    rows = []
    for wav in wavs:
        if current is not None:
            current.write_text(wav, encoding="utf-8")
        rows.append(_functionals(smile, wav))
    return np.stack(rows).astype(np.float32)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m data_utils._opensmile_worker REQUEST.json", file=sys.stderr)
        return 2
    request = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result = Path(request["result"])
    try:
        matrix = extract(request["feature_set"], request["wavs"],
                         Path(request["current"]) if request.get("current") else None)
    except WorkerError as e:
        result.write_text(json.dumps({"error": str(e), "wav": e.wav, "missing_extra": e.missing_extra}),
                          encoding="utf-8")
        return 1
    np.save(request["matrix"], matrix, allow_pickle=False)
    result.write_text(json.dumps({"order": request["wavs"]}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
