"""openSMILE functionals per utterance, merged into a corpus as its "audio" modality.

openSMILE (the PyPI package ``opensmile``, the ``[audio]`` extra) crashes in a process that imported TensorFlow
before it, so extraction runs in a fresh interpreter (``data_utils._opensmile_worker``) that never imports
TensorFlow; the two exchange JSON and ``.npy`` files, never pickles.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .corpus import MODALITIES, Corpus, DataFormatError, Dialogue

log = logging.getLogger(__name__)

# Our name -> (openSMILE FeatureSet name, width of its functionals).
FEATURE_SETS: dict[str, tuple[str, int]] = {
    "egemaps": ("eGeMAPSv02", 88),
    "compare": ("ComParE_2016", 6373),
}
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_SHOWN_IDS = 5


class OpenSmileMissingError(ImportError):
    """The ``opensmile`` package cannot be imported by this interpreter."""


class AudioFeatureError(RuntimeError):
    """openSMILE failed on a wav file or gave non-finite features; the message names the file if known."""


def find_wavs(audio_dir) -> dict[str, list[Path]]:
    """Every ``*.wav`` under ``audio_dir`` (recursively, any case of suffix), keyed by file stem."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: no such audio directory")
    found: dict[str, list[Path]] = {}
    for path in sorted(audio_dir.rglob("*")):
        if path.suffix.lower() == ".wav" and path.is_file():
            found.setdefault(path.stem, []).append(path)
    return found


def match_wavs(base: Corpus, audio_dir) -> tuple[dict[str, Path], int]:
    """The wav of every utterance of ``base`` (in corpus order) and how many wavs match no utterance.

    Raises ``DataFormatError`` if an utterance has no wav, or more than one.
    """
    source = base.source or "<base corpus>"
    found = find_wavs(audio_dir)
    wanted = [u for d in base.dialogues.values() for u in d.utterance_ids]
    if not wanted:
        raise DataFormatError(source, "holds no utterances")
    _check_all_present(base, source, found, audio_dir)
    for u in wanted:
        if len(found[u]) > 1:
            raise DataFormatError(source, f"utterance {u!r} has {len(found[u])} wav files under {audio_dir}: "
                                          f"{', '.join(map(str, found[u]))}")
    needed = set(wanted)
    unmatched = sum(len(paths) for stem, paths in found.items() if stem not in needed)
    return {u: found[u][0] for u in wanted}, unmatched


def _check_all_present(base: Corpus, source: str, found: Mapping[str, list[Path]], audio_dir) -> None:
    missing = {d.id: [u for u in d.utterance_ids if u not in found] for d in base.dialogues.values()}
    missing = {did: ids for did, ids in missing.items() if ids}
    if not missing:
        return
    first, ids = next(iter(missing.items()))
    total = sum(map(len, missing.values()))
    shown = ", ".join(ids[:_SHOWN_IDS]) + (", ..." if len(ids) > _SHOWN_IDS else "")
    raise DataFormatError(
        source, f"{len(ids)} of its {len(base.dialogues[first])} utterances have no <utterance_id>.wav under "
                f"{audio_dir} ({shown}); {total} utterances in {len(missing)} dialogue(s) lack audio in all",
        dialogue=first, field="videoAudio")


def extract_functionals(wavs: Sequence[Path], *, feature_set: str = "egemaps") -> np.ndarray:
    """openSMILE functionals of ``feature_set``: a finite float32 matrix with one row per wav, in order."""
    smile_name, width = _feature_set(feature_set)
    wavs = [str(Path(w)) for w in wavs]
    with tempfile.TemporaryDirectory(prefix="mser-opensmile-") as tmp:
        tmp = Path(tmp)
        request = {"feature_set": smile_name, "wavs": wavs, "matrix": str(tmp / "features.npy"),
                   "result": str(tmp / "result.json"), "current": str(tmp / "current.txt")}
        (tmp / "request.json").write_text(json.dumps(request), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "data_utils._opensmile_worker", str(tmp / "request.json")],
                              env=_worker_env(), capture_output=True, text=True)
        result = _read_result(Path(request["result"]), proc, Path(request["current"]))
        if result.get("order") != wavs:
            raise AudioFeatureError("the openSMILE worker returned rows in an unexpected order")
        matrix = np.load(request["matrix"], allow_pickle=False)
    _check_matrix(matrix, wavs, width, smile_name)
    return matrix


def _feature_set(feature_set: str) -> tuple[str, int]:
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; choose one of {', '.join(FEATURE_SETS)}")
    return FEATURE_SETS[feature_set]


def _worker_env() -> dict[str, str]:
    """This environment, with the directory holding ``data_utils`` first on the worker's import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
    return env


def _read_result(path: Path, proc: subprocess.CompletedProcess, current: Path | None = None) -> dict:
    """The worker's result, or the error it reported (naming the wav), or, if it crashed, an error naming the wav
    it was reading (``current``) and the signal that ended it."""
    result = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if proc.returncode == 0 and "order" in result:
        return result
    if result.get("missing_extra"):
        raise OpenSmileMissingError(f"openSMILE is not available to {sys.executable} ({result['error']}); "
                                    f"install it with: pip install '.[audio]'  (or: pip install opensmile)")
    if "error" in result:
        where = f"{result['wav']}: " if result.get("wav") else ""
        raise AudioFeatureError(f"{where}{result['error']}")
    wav = current.read_text(encoding="utf-8") if current is not None and current.is_file() else ""
    how = f"exit code {proc.returncode}"
    if proc.returncode < 0:
        with contextlib.suppress(ValueError):
            how += f", {signal.Signals(-proc.returncode).name}"
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
    raise AudioFeatureError(f"{wav + ': ' if wav else ''}the openSMILE worker crashed ({how})"
                            + (" while reading this file; check it plays (e.g. with sox), or remove it" if wav else "")
                            + (f" [{tail[:300]}]" if tail else ""))


def _check_matrix(matrix: np.ndarray, wavs: Sequence[str], width: int, smile_name: str) -> None:
    if matrix.dtype != np.float32 or matrix.shape != (len(wavs), width):
        raise AudioFeatureError(f"the openSMILE worker returned a {matrix.dtype} array of shape {matrix.shape}, "
                                f"expected float32 of shape {(len(wavs), width)} for {smile_name}")
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise AudioFeatureError(f"{wavs[row]}: openSMILE gave {int(bad[row].sum())} non-finite {smile_name} "
                                f"functionals (first: {matrix[row, col]} at dimension {col}); "
                                f"is the recording silent or too short?")


def add_audio_features(base: Corpus, audio_dir, *, feature_set: str = "egemaps") -> Corpus:
    """``base`` with openSMILE functionals of ``<utterance_id>.wav`` (found recursively under ``audio_dir``)
    as its "audio" modality, replacing any audio features ``base`` already has.

    Every utterance needs exactly one wav (else ``DataFormatError``); wavs matching no utterance are ignored,
    and their number is logged and noted in the description. Dialogues, labels, splits, label names, the
    synthetic flag and the other modalities' saved extractors are kept (``mser features audio`` records the
    openSMILE one).
    """
    smile_name, width = _feature_set(feature_set)
    wavs, unmatched = match_wavs(base, audio_dir)
    if unmatched:
        log.warning("%d wav file(s) under %s match no utterance of %s; ignored", unmatched, audio_dir,
                    base.source or "the base corpus")
    rows = dict(zip(wavs, extract_functionals(list(wavs.values()), feature_set=feature_set)))
    note = (f"audio: openSMILE {smile_name} functionals ({width}-d) of {len(wavs)} wav files under {audio_dir}"
            f" ({unmatched} unmatched wav files ignored)")
    return Corpus(
        dialogues={did: _with_audio(d, rows) for did, d in base.dialogues.items()},
        splits=dict(base.splits),
        label_names=base.label_names,
        synthetic=base.synthetic,
        description="; ".join(s for s in (base.description, note) if s),
        modalities=tuple(m for m in MODALITIES if m in base.modalities or m == "audio"),
        sessions=dict(base.sessions),
        extractors={m: dict(r) for m, r in base.extractors.items() if m != "audio"},
    )


def _with_audio(dialogue: Dialogue, rows: Mapping[str, np.ndarray]) -> Dialogue:
    audio = np.stack([rows[u] for u in dialogue.utterance_ids])
    return dataclasses.replace(dialogue, features={**dialogue.features, "audio": audio})
