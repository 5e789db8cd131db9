"""Which device a model trains on, and how to choose it: the environment variable ``MSER_DEVICE``.

- unset (or ``auto``): TensorFlow's own choice, the GPU where it sees one (CUDA, or Metal with tensorflow-metal);
- ``cpu``: the GPUs are hidden from TensorFlow, so everything runs on the CPU (the reference: the same numbers on
  every machine of the same build);
- ``gpu``: the GPU; a run stops with an error where TensorFlow sees none. ``gpu:N``: the N-th GPU alone.

The choice is applied when TensorFlow is imported (``import model_utils`` registers :func:`apply` as a post-import
hook, before any device is initialised), so it holds in every process that inherits the variable: ``mser run`` and
its worker processes, Ray actors (``settings.FORWARDED``) and notebook kernels. Every seed records the device it
trained on (``provenance.device`` in ``result.json``, :func:`compute_device`). ``CUDA_VISIBLE_DEVICES=`` still
hides CUDA GPUs, as it always has.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess

VARIABLE = "MSER_DEVICE"
HELP = (f"{VARIABLE}=cpu|gpu|gpu:N chooses the device a run trains on (unset: the GPU where TensorFlow sees one, "
        "else the CPU)")
_CHOICE = re.compile(r"^(auto|cpu|gpu(:\d+)?)$")


def device_choice(environ=None) -> str | None:
    """The device :data:`VARIABLE` asks for: ``'cpu'``, ``'gpu'``, ``'gpu:N'``, or None (unset or ``auto``:
    TensorFlow's choice). Case and surrounding blanks are ignored. ``ValueError`` for anything else."""
    value = (os.environ if environ is None else environ).get(VARIABLE, "").strip().lower()
    if not value or value == "auto":
        return None
    if not _CHOICE.match(value):
        raise ValueError(f"{VARIABLE} must be cpu, gpu or gpu:N (or unset: the GPU where TensorFlow sees one), "
                         f"got {value!r}")
    return value


def apply(tf) -> None:
    """Hide the GPUs :data:`VARIABLE` excludes from TensorFlow (``tf``, the imported module). A post-import hook:
    it never raises (a wrong value is reported by :func:`compute_device`, which every run calls before it trains),
    and where TensorFlow had initialised its devices already, :func:`compute_device` says so."""
    try:
        choice = device_choice()
    except ValueError:
        return
    if choice is None or choice == "gpu":
        return
    gpus = tf.config.list_physical_devices("GPU")
    keep = [] if choice == "cpu" else gpus[int(choice.split(":")[1]):][:1]
    if not gpus or (choice != "cpu" and not keep):
        return
    try:
        tf.config.set_visible_devices(keep, "GPU")
    except RuntimeError:  # the devices were initialised before the hook ran: compute_device() tells
        pass


def compute_device() -> str:
    """The device a model trains on in this process: ``'CPU'``, or ``'GPU'`` when TensorFlow places ops on a GPU
    it sees (after :data:`VARIABLE`'s choice). Imports TensorFlow. ``ValueError`` (one line) when the choice is
    not a valid one, asks for a GPU that TensorFlow does not see, or could not be applied because TensorFlow had
    initialised its devices before ``model_utils`` was imported."""
    import tensorflow as tf

    choice = device_choice()
    visible = tf.config.get_visible_devices("GPU")
    physical = tf.config.list_physical_devices("GPU")
    if choice is not None and choice.startswith("gpu"):
        index = int(choice.split(":")[1]) if ":" in choice else 0
        if index >= len(physical):
            seen = f"only {len(physical)} GPU{'' if len(physical) == 1 else 's'}" if physical else "no GPU"
            raise ValueError(f"{VARIABLE}={choice}, but TensorFlow sees {seen} here (`mser env` lists its devices)")
    if choice == "cpu":
        applied = not visible
    elif choice == "gpu":
        applied = bool(visible)
    elif choice is not None:  # gpu:N
        applied = visible == [physical[int(choice.split(":")[1])]]
    else:
        applied = True
    if not applied:
        raise ValueError(f"{VARIABLE}={choice} could not be applied: TensorFlow had set up its devices before "
                         "model_utils was imported (import model_utils first, or set the variable before Python "
                         "starts)")
    return "GPU" if visible else "CPU"


def cpu_name() -> str:
    """The processor's marketing name (``'Apple M2'``, ``'Intel(R) Xeon(R) …'``), or the architecture where the
    system does not tell it."""
    try:
        if platform.system() == "Darwin":
            name = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip()
            if name:
                return name
        elif platform.system() == "Linux":
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.lower().startswith(("model name", "hardware")):
                        return " ".join(line.split(":", 1)[1].split())
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_names() -> list[str]:
    """Each GPU TensorFlow sees (physical, whatever :data:`VARIABLE` hides), as ``'GPU:0 (METAL)'`` with the name
    its driver gives where TensorFlow reports one. Imports TensorFlow."""
    import tensorflow as tf

    names = []
    for i, gpu in enumerate(tf.config.list_physical_devices("GPU")):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except (ValueError, RuntimeError):
            details = {}
        name = details.get("device_name")
        names.append(f"GPU:{i}" + (f" ({name})" if name else ""))
    return names
