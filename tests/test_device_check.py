"""Choosing the device (MSER_DEVICE), `mser env --check-device`'s comparison, and the GPU=metal stack's files.

The comparison runs on two real CPU trainings of the check's fixed model (the same seed twice: no difference, op
determinism holds, the same speed) and on made-up trials whose differences it must find. This module runs on the
GPU=metal stack too (`make test-metal-stack`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from model_utils.machine import device as dev
from model_utils.machine.device_check import Trial, compare

REPO = Path(__file__).resolve().parents[1]


def _trial(losses=((1.0, 2.0), (0.5, 1.5)), posteriors=None, seconds=1.0, device="GPU:0") -> Trial:
    p = np.full((2, 3, 4), 0.25, np.float32) if posteriors is None else np.asarray(posteriors, np.float32)
    return Trial(device, np.asarray(losses, np.float64), p, seconds)


@pytest.mark.slow
def test_two_cpu_runs_of_the_check_agree_exactly():
    from model_utils.machine.device_check import train_trials

    cpu = train_trials(repeats=2)
    assert [t.device for t in cpu] == ["CPU", "CPU"] and cpu[0].losses.shape == (3, 2)
    assert np.isfinite(cpu[0].losses).all() and cpu[0].posteriors.shape[-1] == 4 and cpu[0].posteriors.max() > 0
    row = compare(cpu, cpu[::-1])  # the second run as the 'accelerator': the same seed on the same device
    assert row["loss_max_abs_diff"] == 0.0 and row["posterior_max_abs_diff"] == 0.0
    assert row["deterministic"] is True and row["repeat_max_abs_diff"] == 0.0
    assert row["speed_ratio"] == 1.0


def test_compare_finds_each_difference():
    cpu = [_trial(device="CPU", seconds=2.0), _trial(device="CPU", seconds=3.0)]
    moved = np.full((2, 3, 4), 0.25, np.float32)
    moved[1, 2, 3] += 1e-3
    gpu = [_trial(losses=((1.0, 2.0), (0.5, 1.5 + 2e-3)), posteriors=moved, seconds=1.0),
           _trial(losses=((1.0, 2.0), (0.5, 1.5 + 2e-3)), posteriors=moved, seconds=4.0)]
    row = compare(cpu, gpu)
    assert row["device"] == "GPU:0"
    assert row["loss_max_abs_diff"] == pytest.approx(2e-3) and row["posterior_max_abs_diff"] == pytest.approx(1e-3, rel=1e-4)
    assert row["speed_ratio"] == 2.0  # the fastest of each: 2 s against 1 s
    assert row["deterministic"] is True
    wobbly = [gpu[0], _trial(posteriors=np.where(np.arange(4) == 0, 0.2500001, 0.25) * np.ones((2, 3, 4)))]
    row = compare(cpu, wobbly)
    assert row["deterministic"] is False and row["repeat_max_abs_diff"] > 0
    assert compare(cpu, [gpu[0]])["deterministic"] is False  # one run shows nothing about repeating


def test_compare_reads_nan_and_refuses_what_cannot_be_compared():
    nan = _trial(losses=((1.0, np.nan), (0.5, 1.5)))
    assert compare([nan], [nan, nan])["loss_max_abs_diff"] == 0.0  # NaN where the reference has NaN too
    assert compare([nan], [nan, nan])["deterministic"] is True
    assert compare([_trial()], [nan])["loss_max_abs_diff"] == np.inf
    with pytest.raises(ValueError, match="losses differ in shape"):
        compare([_trial()], [_trial(losses=((1.0, 2.0),))])
    with pytest.raises(ValueError, match="at least one trial"):
        compare([], [_trial()])


@pytest.mark.parametrize("value, choice", [(None, None), ("", None), ("auto", None), (" CPU ", "cpu"),
                                           ("gpu", "gpu"), ("gpu:1", "gpu:1")])
def test_device_choice_reads_the_variable(value, choice):
    environ = {} if value is None else {dev.VARIABLE: value}
    assert dev.device_choice(environ) == choice


@pytest.mark.parametrize("value", ["metal", "gpu:", "gpu:x", "cuda:0", "cpu,gpu"])
def test_device_choice_refuses_anything_else_in_one_line(value):
    with pytest.raises(ValueError, match=r"^MSER_DEVICE must be cpu, gpu or gpu:N") as e:
        dev.device_choice({dev.VARIABLE: value})
    assert "\n" not in str(e.value)


def _mser(*args, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mser.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **env}, timeout=600)


def test_a_gpu_asked_for_where_there_is_none_is_one_error_line():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    done = _mser("env", MSER_DEVICE="gpu")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: MSER_DEVICE=gpu, but TensorFlow sees no GPU here (`mser env` lists its devices)"]
    done = _mser("env", "--json", MSER_DEVICE="cpu")
    assert done.returncode == 0 and '"compute_device": "CPU"' in done.stdout and '"MSER_DEVICE": "cpu"' in done.stdout


@pytest.mark.slow
def test_check_device_on_a_machine_without_accelerator_says_so_and_exits_0():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    done = _mser("env", "--check-device")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("device check: text-context on synthetic-small, seed 0, 3 epochs")
    assert re.fullmatch(rf"CPU: {re.escape(dev.cpu_name())} \(\d+ cores\): \d+\.\d\d s a run; op determinism holds "
                        r"\(the same seed twice gave identical numbers\)", lines[1]), lines[1]
    assert lines[2].startswith("no accelerator found") and lines[3].startswith("mser run trains on: CPU")


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_the_metal_stack_pins_the_plugin_a_tensorflow_it_loads_on_and_everything_the_suite_needs():
    metal, main = _pins(REPO / "requirements-metal.txt"), _pins(REPO / "requirements.txt")
    assert metal["tensorflow-metal"] == "1.2.0"
    assert re.fullmatch(r"2\.(18|19)\.\d+", metal["tensorflow"])
    assert all(re.fullmatch(r"\d+(\.\d+)+", v) for v in metal.values()), metal  # exact pins only
    assert set(main) <= set(metal), f"requirements-metal.txt lacks {sorted(set(main) - set(metal))}"
    assert tuple(map(int, metal["numpy"].split(".")[:2])) < (2, 2)  # TensorFlow 2.19 requires numpy < 2.2


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_gpu_metal_is_refused_off_apple_silicon_in_one_line():
    if os.uname().sysname == "Darwin" and os.uname().machine == "arm64":
        pytest.skip("this is a Mac on Apple silicon: GPU=metal is supported here")
    done = subprocess.run(["make", "--no-print-directory", "-n", "setup", "GPU=metal"], capture_output=True,
                          text=True, cwd=REPO, timeout=60)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "GPU=metal needs macOS on Apple silicon" in done.stderr and "tensorflow-metal" in done.stderr


class _FakeConfig:
    """The part of ``tf.config`` that :func:`device.apply` uses, on a machine with two GPUs."""

    def __init__(self, initialised=False):
        self.visible, self.initialised = None, initialised

    def list_physical_devices(self, kind):
        return ["GPU:0", "GPU:1"] if kind == "GPU" else []

    def set_visible_devices(self, devices, kind):
        if self.initialised:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        self.visible = (list(devices), kind)


@pytest.mark.parametrize("value, visible", [("cpu", ([], "GPU")), ("gpu:1", (["GPU:1"], "GPU")), ("gpu", None),
                                            ("", None), ("gpu:7", None), ("bogus", None)])
def test_apply_hides_what_the_choice_excludes_and_never_raises(monkeypatch, value, visible):
    class FakeTF:
        config = _FakeConfig()

    monkeypatch.setenv(dev.VARIABLE, value)
    dev.apply(FakeTF)
    assert FakeTF.config.visible == visible
    FakeTF.config = _FakeConfig(initialised=True)
    dev.apply(FakeTF)  # too late: compute_device() reports it, the import goes on


def test_the_report_of_a_machine_with_gpus_names_each_finding():
    from model_utils.machine.device_check import format_check

    cpu = [_trial(device="CPU", seconds=2.0), _trial(device="CPU", seconds=2.0)]
    slow = compare(cpu, [_trial(seconds=4.0), _trial(seconds=4.0, posteriors=np.full((2, 3, 4), 0.26))])
    report = {"run": {"experiment": "text-context", "data": "synthetic-small", "seed": 0, "epochs": 3,
                      "batch_size": 4, "repeats": 2},
              "tensorflow": "2.19.1", "cpu": {"name": "Apple M2", "cores": 8, "seconds": 2.0, "deterministic": True,
                                              "repeat_max_abs_diff": 0.0},
              "accelerators": [{**slow, "name": "GPU:0 (METAL)"},
                               {"device": "GPU:1", "name": "GPU:1", "error": "training on gpu:1 failed: boom"}],
              "mser_run_device": "GPU", "device_choice": "unset"}
    lines = format_check(report).splitlines()
    assert lines[1] == ("CPU: Apple M2 (8 cores): 2.00 s a run; op determinism holds (the same seed twice gave "
                        "identical numbers)")
    assert lines[2] == ("GPU:0 (METAL): losses differ from the CPU's by at most 0, posteriors by at most 0; 0.50x "
                        "the CPU's speed (slower); op determinism does NOT hold (the same seed twice differed by up "
                        "to 0.01)")
    assert lines[3].startswith("GPU:1: training on gpu:1 failed: boom; runs there would fail too")
    assert lines[4].startswith("mser run trains on: GPU (MSER_DEVICE=unset")
