"""The one place the suite sets TensorFlow's environment, before TensorFlow is imported (``import model_utils``
calls :func:`apply`). Environment variables reach every process started from here: worker processes, Ray actors
(:func:`forwarded`) and notebook kernels.

- ``TF_CPP_MIN_LOG_LEVEL=3`` unless the caller chose: TensorFlow's C++ info, warnings and errors stay quiet.
- ``TF_ENABLE_ONEDNN_OPTS=1``, always: oneDNN on (TensorFlow's own default on x86; about 1.4x faster here than off,
  and just as deterministic), so numbers never depend on the caller's shell.
- ``TF_NUM_INTRAOP_THREADS=1`` and ``TF_NUM_INTEROP_THREADS=1`` unless the caller chose: with more threads
  oneDNN's convolutions sum in another order, so a cnn-* run in a notebook kernel would differ in the last digits
  from the same run in a worker process (which trains with one thread). Same seed, same numbers, wherever a run
  trains.
"""
from __future__ import annotations

import os

PINNED = {"TF_ENABLE_ONEDNN_OPTS": "1"}  # set whatever the caller's shell says
DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
# What decides a run's numbers or its logs, as `mser env` reports them.
REPORTED = ("TF_ENABLE_ONEDNN_OPTS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_CPP_MIN_LOG_LEVEL",
            "PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES", "MSER_DEVICE")
# What a Ray actor must see as this process does (its threads are set by the lane itself).
FORWARDED = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONHASHSEED", "MSER_REUSE_TRACES", "MSER_DEVICE")


def apply() -> None:
    """Set :data:`PINNED` and, where the caller set nothing, :data:`DEFAULTS` in this process's environment."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.update(PINNED)


def forwarded() -> dict[str, str]:
    """The variables of :data:`FORWARDED` this process has, for a worker started elsewhere (a Ray actor)."""
    return {k: v for k, v in os.environ.items() if k in FORWARDED}
