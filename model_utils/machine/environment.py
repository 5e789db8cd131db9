"""What this process computes on: versions, the devices TensorFlow sees, the settings that make runs reproducible,
and the optional extras installed. ``mser env`` prints it; run provenance records the device part.

Determinism: :func:`model_utils.training.set_seed` seeds Python, numpy and the backend and turns on TensorFlow's op
determinism, so the same seed gives the same numbers on the same device and build. oneDNN is pinned on and
TensorFlow to one thread per process (by ``import model_utils``, the threads unless the caller set them), so CPU
numbers never depend on the caller's shell or on whether a run trains in a notebook kernel or a worker process.
"""
from __future__ import annotations

import os
import platform

from .device import HELP as DEVICE_HELP
from .device import compute_device, cpu_name
from .provenance import package_version
from .settings import REPORTED

# Optional extras: the package that shows the extra is installed, by extra name (pyproject's optional-dependencies).
EXTRAS = {"text": "sentence-transformers", "audio": "opensmile", "ray": "ray",
          "tensorboard": "tensorboard"}


def devices() -> list[str]:
    """The devices TensorFlow sees, e.g. ``['CPU:0']`` or ``['CPU:0', 'GPU:0']``, whatever ``MSER_DEVICE`` hides
    (:func:`~model_utils.machine.device.compute_device` says which one a run trains on). Imports TensorFlow."""
    import tensorflow as tf

    return [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()]


def tensorflow_threads() -> dict:
    """The TensorFlow thread pools this process trains with: set through ``tf.config.threading`` (worker
    processes), else ``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` (1 from ``import model_utils``), else
    TensorFlow's default. Results can depend on them (``runner.run_many``). Imports TensorFlow."""
    import tensorflow as tf

    def chosen(api: int, variable: str) -> int | str:
        return api or int(os.environ.get(variable, "0")) or "TensorFlow's default (one per core)"

    return {"intra_op": chosen(tf.config.threading.get_intra_op_parallelism_threads(), "TF_NUM_INTRAOP_THREADS"),
            "inter_op": chosen(tf.config.threading.get_inter_op_parallelism_threads(), "TF_NUM_INTEROP_THREADS")}


def environment_report() -> dict:
    """A JSON-ready description of this environment (imports TensorFlow, about 5 s)."""
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "tensorflow": package_version("tensorflow"),
        "keras": package_version("keras"),
        "numpy": package_version("numpy"),
        "devices": devices(),
        "compute_device": compute_device(),
        "device_choice": f"{DEVICE_HELP}; `mser env --check-device` compares the GPU with the CPU",
        "op_determinism": "on in every run (model_utils.training.set_seed; same seed, same device: same numbers)",
        "settings": {name: os.environ.get(name, "(unset)") for name in REPORTED},
        "extras": {extra: package_version(package) for extra, package in EXTRAS.items()},
    }


def format_report(report: dict) -> str:
    """:func:`environment_report` as aligned ``key: value`` lines for a terminal."""
    lines = []
    for key, value in report.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "(none)"
        lines.append(f"{key + ':':<16}{value}")
    return "\n".join(lines)
