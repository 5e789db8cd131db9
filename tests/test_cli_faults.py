"""What the commands do with faults a user can cause: bad option values, outputs that cannot be written, a bad data
file for `mser reproduce`; and what they leave: strict JSON on stdout, progress on stderr, no TensorFlow C++ log
lines, files and folders with the permissions the umask gives, no report deleted."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from conftest import TF_LOG
from model_utils.architectures import ModelInputs, register_architecture
from model_utils.config import GROUPS, Experiment

REPO = Path(__file__).resolve().parents[1]
SMALL = "synthetic-small"


def mser(*args, umask: int | None = None, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # a shell that sets nothing
    return subprocess.run([sys.executable, "-m", "mser.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=env, preexec_fn=None if umask is None else (lambda: os.umask(umask)),
                          **kwargs)


def one_line_error(stderr: str, *must_name: str) -> str:
    """The one `error: …` line of a refused command, checked to name ``must_name`` and to carry no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ") or ": error: " in line]
    assert len(errors) == 1, stderr
    for text in must_name:
        assert text in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory):
    """`mser run … --workers 2 --quiet` (two seeds in two spawned worker processes) under umask 027."""
    out = tmp_path_factory.mktemp("quiet") / "run"
    proc = mser("run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "2", "--workers", "2", "--quiet",
                "--out", out, umask=0o027)
    assert proc.returncode == 0, proc.stderr
    return out, proc


# ------------------------------------------------------------------------------------------------ 8, 9: stdout

def test_mser_run_prints_strict_json_on_stdout_and_progress_on_stderr(tmp_path, capsys):
    from mser.cli import main

    assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out",
                 str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert summary["experiment"] == "text-bilstm" and summary["seeds"] == [0]
    assert "[text-bilstm] seed 0 (1/1)" in err and "epoch   1/1" in err and f"wrote {tmp_path / 'r'}" in err


def test_run_many_notes_on_stderr_when_an_architecture_cannot_go_to_the_workers(monkeypatch, capsys):
    import cloudpickle

    from model_utils.runner import run_many

    @register_architecture("test_faults_dense", modalities=("text",))
    def dense(x: ModelInputs, num_classes):
        return keras.layers.Dense(num_classes, activation="softmax")(x.features["text"])

    def cannot(obj, *args, **kwargs):
        raise TypeError("cannot pickle this")

    monkeypatch.setattr(cloudpickle, "dumps", cannot)
    run_many([Experiment("faults-dense", "test_faults_dense", ("text",))], SMALL, seeds=[0], epochs=1, workers=2,
             verbose=0, progress=False)
    out, err = capsys.readouterr()
    assert out == ""
    assert "note: architecture 'test_faults_dense' cannot be sent to worker processes" in err


# ------------------------------------------------------------------------------------------------ 10: option values

def test_epochs_0_is_refused_not_read_as_the_default_cap():
    from model_utils.runner import run_experiment

    proc = mser("run", "text-bilstm", "--data", SMALL, "--epochs", "0")
    assert proc.returncode == 2 and one_line_error(proc.stderr, "--epochs", "positive integer", "'0'")
    with pytest.raises(ValueError, match="epochs.* must be >= 1.*epochs=0"):
        run_experiment("text-bilstm", SMALL, epochs=0, verbose=0)


def test_n_boot_0_is_refused_in_one_line(quiet_run):
    from model_utils.metrics import paired_bootstrap

    out, _ = quiet_run
    for n in ("0", "-5"):
        proc = mser("compare", out, out, "--n-boot", n)
        assert proc.returncode == 1 and one_line_error(proc.stderr, "--n-boot", ">= 1", n)
    with pytest.raises(ValueError, match="n_boot .* must be an integer >= 1"):
        paired_bootstrap([[0, 1]], [[0, 1]], [[1, 1]], n_boot=0)


def test_list_with_an_unknown_group_names_the_valid_groups():
    proc = mser("list", "--group", "bogus")
    assert proc.returncode == 2 and not proc.stdout
    line = one_line_error(proc.stderr, "--group", "'bogus'")
    assert all(repr(g) in line for g in GROUPS)


def test_a_misspelt_experiment_name_gets_close_matches():
    from model_utils.experiments import get_experiment

    with pytest.raises(KeyError, match="unknown experiment 'mulitmodal'; did you mean 'multimodal'"):
        get_experiment("mulitmodal")
    with pytest.raises(KeyError, match="unknown experiment 'textbilstm'; did you mean 'text-bilstm'"):
        get_experiment("textbilstm")
    proc = mser("run", "multimodl", "--data", SMALL)
    assert proc.returncode == 1 and one_line_error(proc.stderr, "'multimodl'", "did you mean 'multimodal'")


# ------------------------------------------------------------------------------------------------ 11: bad --out

def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a mode-555 one, or for root (whom modes do not stop) /sys."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            (candidate / ".probe").mkdir()
        except OSError:
            return candidate
        (candidate / ".probe").rmdir()
    pytest.skip("no folder here refuses writes to this user")


def _spy(monkeypatch, target: str, what: str) -> None:
    monkeypatch.setattr(target, lambda *a, **k: pytest.fail(f"{what} started before the inputs and outputs were "
                                                            "checked"))


COMMANDS = {
    # command line (OUT marks the output path) and the work that must not start
    "run": (["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", "OUT"],
            "--out", "model_utils.runner.run_experiment"),
    "features-text": (["features", "text", "--transcripts", "missing.csv", "--out", "OUT"], "--out",
                      "data_utils.text_features.build_text_corpus"),
    "features-audio": (["features", "audio", "--audio-dir", ".", "--base", "missing.pkl", "--out", "OUT"], "--out",
                       "mser.commands.features_audio.read_corpus"),
    "table-csv": (["table", "runs/none", "--csv", "OUT"], "--csv", "model_utils.report.runs_table"),
    "reproduce": (["reproduce", "--data", SMALL, "--no-download", "--reports", "OUT"], "--reports",
                  "papermill.execute_notebook"),
}


@pytest.mark.parametrize("case", ["child-of-a-file", "read-only-folder"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unwritable_output_is_refused_in_one_line_before_any_work(command, case, tmp_path, monkeypatch, capsys):
    from mser.cli import main

    argv, option, work = COMMANDS[command]
    if case == "child-of-a-file":
        (tmp_path / "a-file").write_text("not a folder")
        out = tmp_path / "a-file" / "out"
    else:
        out = _read_only_folder(tmp_path) / "mser-out"
    _spy(monkeypatch, work, work)
    assert main([str(out) if a == "OUT" else a for a in argv]) == 1
    line = one_line_error(capsys.readouterr().err, option, str(out))
    assert ("a-file is a file, not a directory" if case == "child-of-a-file" else "no permission to write") in line
    assert not out.exists()


# ------------------------------------------------------------------------------------------------ 12: reproduce

def test_reproduce_keeps_every_previous_report(tmp_path, capsys):
    """A full run's reports survive any number of later runs (two here: the old rotation kept one and deleted the
    one before), each renamed with a timestamp."""
    from mser.reproduce import reproduce

    reports = tmp_path / "reports"
    (reports / "tables").mkdir(parents=True)
    (reports / "results.md").write_text("the full run's results")
    for _ in range(2):
        reproduce(data=SMALL, reports=reports, notebooks=(), try_download=False)
    kept = sorted(p.name for p in tmp_path.iterdir() if p.name != "reports")
    assert len(kept) == 2 and all(re.fullmatch(r"reports\.\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(-\d+)?", k) for k in kept)
    assert "the full run's results" in [(tmp_path / k / "results.md").read_text() for k in kept]
    assert "Kept the previous reports/ as reports." in capsys.readouterr().err


def test_reproduce_refuses_a_bad_pickle_before_moving_reports_or_starting_a_kernel(tmp_path, monkeypatch, capsys):
    from mser.cli import main

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"this is not a pickle")
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "results.md").write_text("the full run's results")
    _spy(monkeypatch, "papermill.execute_notebook", "a notebook kernel")
    assert main(["reproduce", "--data", str(bad), "--reports", str(reports), "--no-download"]) == 1
    one_line_error(capsys.readouterr().err, "bad.pkl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pkl", "reports"]  # nothing moved
    assert (reports / "results.md").read_text() == "the full run's results"


# ------------------------------------------------------------------------------------------------ 13: the umask

def test_every_output_file_and_folder_gets_the_umask_permissions(quiet_run):
    out, _ = quiet_run
    paths = [out, *out.rglob("*")]
    assert {p.relative_to(out).as_posix() for p in paths} >= {".", "config.json", "summary.json", "seed_0",
                                                               "seed_1/model.keras", "seed_1/predictions.npz"}
    modes = {p.relative_to(out).as_posix(): oct(p.stat().st_mode & 0o777) for p in paths}
    assert modes == {k: oct(0o750 if (out / k).is_dir() else 0o640) for k in modes}  # umask 027


# ------------------------------------------------------------------------------------------------ 14: TF C++ logs

def test_a_quiet_run_with_workers_prints_no_tensorflow_log_lines(quiet_run):
    out, proc = quiet_run
    assert not TF_LOG.search(proc.stderr), proc.stderr
    assert proc.stderr.strip() == f"wrote {out}"


def test_only_the_log_lines_tf_cpp_min_log_level_hides_are_filtered():
    """At level 3 the filter drops absl's banner and I/W/E lines in both formats; a fatal line and anything else
    written to descriptor 2 still show, in order."""
    code = ("import os\n"
            "from model_utils.machine.tf_logs import filtered_stderr\n"
            "with filtered_stderr():\n"
            "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to "
            "STDERR\\n')\n"
            "    os.write(2, b'I0000 00:00:1796055762.333928   20155 port.cc:153] oneDNN custom operations\\n')\n"
            "    os.write(2, b'2025-09-17 14:44:05.157831: E external/local_xla/xla/x.cc:32] hidden\\n')\n"
            "    os.write(2, b'F0000 00:00:1796055762.333928   20155 x.cc:1] fatal\\n')\n"
            "    os.write(2, b'a warning of our own\\n')\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert proc.returncode == 0 and proc.stderr.splitlines() == [
        "F0000 00:00:1796055762.333928   20155 x.cc:1] fatal", "a warning of our own"]
    env["TF_CPP_MIN_LOG_LEVEL"] = "0"  # asked for everything: nothing is filtered
    assert len(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                              env=env).stderr.splitlines()) == 5


# --------------------------------------------------------------------------------------------------- items 4 and 7

def test_a_diverging_run_stops_with_one_line_not_a_normal_looking_summary(tmp_path):
    """Features finite in float32 but huge (3e37, unstandardised) overflow a convolution: the loss is inf."""
    import dataclasses

    import numpy as np

    from data_utils.corpus import write_corpus
    from data_utils.synthetic import synthetic_corpus

    corpus = synthetic_corpus(seed=0, config=SMALL)
    huge = {k: dataclasses.replace(d, features={m: a * np.float32(3e37) for m, a in d.features.items()})
            for k, d in corpus.dialogues.items()}
    path = write_corpus(dataclasses.replace(corpus, dialogues=huge), tmp_path / "huge.pkl")
    out = mser("run", "cnn-text", "--data", path, "--seeds", 1, "--epochs", 2, "--set", "train.standardize=false",
               "--out", tmp_path / "run", "--quiet")
    assert out.returncode == 1 and out.stdout == ""
    one_line_error(out.stderr, "the training loss became inf in epoch 1: training diverged", "learning rate")
    assert not (tmp_path / "run" / "summary.json").exists()


def test_mser_run_warns_about_classes_before_training_and_lists_the_untested_ones(tmp_path):
    import pickle

    from data_utils.corpus import corpus_to_tuple
    from data_utils.synthetic import synthetic_corpus

    layout = list(corpus_to_tuple(synthetic_corpus(seed=0, config=SMALL)))
    test_ids = set(layout[8])
    layout[2] = {d: [2 if (d in test_ids and lab == 1) else lab for lab in v] for d, v in layout[2].items()}  # no sad
    path = tmp_path / "no_sad_in_test.pkl"
    path.write_bytes(pickle.dumps(tuple(layout)))
    out = mser("run", "cnn-text", "--data", path, "--seeds", 1, "--epochs", 1, "--out", tmp_path / "run", "--quiet")
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "'sad' have no test utterances" in warnings[0] and "capped at 3/4" in warnings[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["classes_without_test_support"] == ["sad"]
