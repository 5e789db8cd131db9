"""``mser env --check-device``: is the GPU right, repeatable and faster than the CPU for the suite's models, here?

One tiny fixed run (:data:`EXPERIMENT` on :data:`DATA`, seed :data:`SEED`, :data:`EPOCHS` epochs of
:data:`BATCH_SIZE`-dialogue steps) is trained twice on each device, through the suite's own
:func:`model_utils.run.runner.run_seed`, in a fresh process per device whose ``MSER_DEVICE`` chooses it
(:mod:`model_utils.machine.device`): the CPU (the reference) and every GPU TensorFlow sees. :func:`compare` then
gives, for each device, the largest differences from the CPU's losses and posteriors, its speed against the CPU's and
whether the same seed gave the same numbers twice there (op determinism).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .device import VARIABLE, compute_device, cpu_name, device_choice, gpu_names

EXPERIMENT, DATA, SEED, EPOCHS, BATCH_SIZE = "text-context", "synthetic-small", 0, 3, 4
REPEATS = 2  # runs per device: the same seed twice, for determinism
TRIAL_TIMEOUT = 900  # seconds one device's trials may take


@dataclass(frozen=True)
class Trial:
    """One training of the fixed run on one device.

    ``losses``: (epochs, 2) float64, the training loss (Keras' running mean over the epoch's batches) and the
    validation loss of every epoch; ``posteriors``: (dialogues, T, C) float32, the test posteriors (0 where not
    scored); ``seconds``: wall seconds of training (``SeedResult.train_seconds``, no tracing of the model build)."""

    device: str
    losses: np.ndarray
    posteriors: np.ndarray
    seconds: float


def _max_abs_diff(a: np.ndarray, b: np.ndarray, what: str) -> float:
    if a.shape != b.shape:
        raise ValueError(f"the trials' {what} differ in shape: {a.shape} against {b.shape}")
    if a.size == 0:
        return 0.0
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    same_nan = np.isnan(a) & np.isnan(b)
    diff[same_nan] = 0.0
    return float(np.nan_to_num(diff, nan=np.inf).max())


def compare(reference: Sequence[Trial], candidate: Sequence[Trial]) -> dict:
    """How ``candidate`` (the trials of one device, the same seed each time) compares with ``reference`` (the
    CPU's). Pure: no TensorFlow.

    Returns ``device``; ``loss_max_abs_diff`` and ``posterior_max_abs_diff``: the largest absolute difference
    between the first trial of each (0.0 when identical; ``inf`` where one is NaN and the other is not);
    ``speed_ratio``: the reference's fastest trial time over the candidate's (above 1: the candidate trains
    faster); ``deterministic``: every trial of ``candidate`` equal to its first, bit for bit (NaN equal to NaN);
    ``repeat_max_abs_diff``: the largest difference among them. ``ValueError`` for no trials, or trials whose losses
    or posteriors differ in shape (another number of epochs or another test set)."""
    if not reference or not candidate:
        raise ValueError("compare needs at least one trial of each device")
    first, base = candidate[0], reference[0]
    repeat = max((max(_max_abs_diff(first.losses, t.losses, "losses"),
                      _max_abs_diff(first.posteriors, t.posteriors, "posteriors")) for t in candidate[1:]),
                 default=0.0)
    deterministic = all(np.array_equal(first.losses, t.losses, equal_nan=True)
                        and np.array_equal(first.posteriors, t.posteriors, equal_nan=True) for t in candidate[1:])
    fastest = min(t.seconds for t in candidate)
    return {"device": first.device,
            "loss_max_abs_diff": _max_abs_diff(base.losses, first.losses, "losses"),
            "posterior_max_abs_diff": _max_abs_diff(base.posteriors, first.posteriors, "posteriors"),
            "speed_ratio": min(t.seconds for t in reference) / fastest if fastest > 0 else float("inf"),
            "deterministic": deterministic and len(candidate) > 1,
            "repeat_max_abs_diff": repeat}


def train_trials(repeats: int = REPEATS) -> list[Trial]:
    """Train the fixed run ``repeats`` times in this process, on the device ``MSER_DEVICE`` chooses (the second
    reuses the traced graph, as a run's later seeds do). Imports TensorFlow; a few seconds a trial on a CPU core."""
    from ..run.runner import run_seed

    trials = []
    for _ in range(repeats):
        run = run_seed(EXPERIMENT, DATA, SEED, epochs=EPOCHS, verbose=0,
                       overrides=[f"train.batch_size={BATCH_SIZE}", f"train.patience={EPOCHS}"])
        seed = run.seeds[0]
        losses = np.array([[row["loss"], row["val_loss"]] for row in seed.history], np.float64).reshape(-1, 2)
        trials.append(Trial(compute_device(), losses, np.asarray(seed.probabilities, np.float32),
                            float(seed.train_seconds)))
    return trials


def _trials_in_process(choice: str, folder: Path) -> list[Trial]:
    """:func:`train_trials` in a fresh Python process with ``MSER_DEVICE=choice`` (TensorFlow hides the other
    devices from its start); its device is named as the choice (``'CPU'``, ``'GPU:0'``)."""
    out = folder / f"{choice.replace(':', '_')}.npz"
    env = {**os.environ, VARIABLE: choice}
    code = ("import model_utils, sys; from model_utils.machine.device_check import _write_trials; "
            "_write_trials(sys.argv[1])")
    done = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True,
                          timeout=TRIAL_TIMEOUT)
    if done.returncode != 0 or not out.is_file():
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"training on {choice} failed: {last}")
    with np.load(out) as saved:
        name = "CPU" if choice == "cpu" else choice.upper()
        return [Trial(name, saved[f"losses_{i}"], saved[f"posteriors_{i}"], float(saved[f"seconds_{i}"]))
                for i in range(int(saved["repeats"]))]


def _write_trials(path: str) -> None:
    trials = train_trials()
    arrays = {"repeats": len(trials)}
    for i, t in enumerate(trials):
        arrays.update({f"losses_{i}": t.losses, f"posteriors_{i}": t.posteriors, f"seconds_{i}": t.seconds})
    np.savez(path, **arrays)


def check_devices() -> dict:
    """Train the fixed run on the CPU and on each GPU TensorFlow sees, each in its own process; compare each with
    the CPU (:func:`compare`). Returns a JSON-ready report: the CPU's name and its own determinism, one comparison
    per GPU (or its ``error`` where training there failed), the device ``mser run`` trains on under the present
    ``MSER_DEVICE`` and the choice itself. ``ValueError`` for an ``MSER_DEVICE`` that cannot hold here;
    ``RuntimeError`` when training on the CPU fails."""
    import tensorflow as tf

    choice = device_choice()
    run_device = compute_device()
    gpus = gpu_names()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mser-device-check-") as folder:
        cpu = _trials_in_process("cpu", Path(folder))
        for i, name in enumerate(gpus):
            try:
                rows.append({**compare(cpu, _trials_in_process(f"gpu:{i}", Path(folder))), "name": name})
            except RuntimeError as e:  # e.g. an op without a deterministic kernel there: say so, check the others
                rows.append({"device": f"GPU:{i}", "name": name, "error": str(e)})
    return {"run": {"experiment": EXPERIMENT, "data": DATA, "seed": SEED, "epochs": EPOCHS,
                    "batch_size": BATCH_SIZE, "repeats": REPEATS},
            "tensorflow": tf.__version__,
            "cpu": {"name": cpu_name(), "cores": os.cpu_count(), "seconds": min(t.seconds for t in cpu),
                    **{k: v for k, v in compare(cpu, cpu).items()
                       if k in ("deterministic", "repeat_max_abs_diff")}},
            "accelerators": rows,
            "mser_run_device": run_device,
            "device_choice": choice or "unset"}


def format_check(report: dict) -> str:
    """:func:`check_devices`'s report as lines for a terminal."""
    run, cpu = report["run"], report["cpu"]

    def determinism(row: dict) -> str:
        return ("op determinism holds (the same seed twice gave identical numbers)" if row["deterministic"] else
                f"op determinism does NOT hold (the same seed twice differed by up to "
                f"{row['repeat_max_abs_diff']:.3g})")

    lines = [f"device check: {run['experiment']} on {run['data']}, seed {run['seed']}, {run['epochs']} epochs of "
             f"{run['batch_size']}-dialogue steps, {run['repeats']} times on each device (TensorFlow "
             f"{report['tensorflow']})",
             f"CPU: {cpu['name']} ({cpu['cores']} cores): {cpu['seconds']:.2f} s a run; {determinism(cpu)}"]
    if not report["accelerators"]:
        lines.append("no accelerator found: TensorFlow sees only the CPU, so there is nothing to compare it with")
    for row in report["accelerators"]:
        if "error" in row:
            lines.append(f"{row['name']}: {row['error']}; runs there would fail too: MSER_DEVICE=cpu trains on the CPU")
            continue
        ratio = row["speed_ratio"]
        speed = f"{ratio:.2f}x the CPU's speed ({'faster' if ratio > 1 else 'slower'})"
        lines.append(f"{row['name']}: losses differ from the CPU's by at most {row['loss_max_abs_diff']:.3g}, "
                     f"posteriors by at most {row['posterior_max_abs_diff']:.3g}; {speed}; {determinism(row)}")
    choice = report["device_choice"]
    lines.append(f"mser run trains on: {report['mser_run_device']} ({VARIABLE}={choice}"
                 f"{'' if choice != 'unset' else ': the GPU where TensorFlow sees one'}; {VARIABLE}=cpu or gpu "
                 "to choose)")
    return "\n".join(lines)
