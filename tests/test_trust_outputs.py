"""What the suite writes, and what it never touches (issue 20, items 3 and 6-19 on outputs, numbers and reports).

Each test names the item of the fault hunt it pins. The run directories here are written without training where the
training is not the point (:func:`fake_run`), so these tests take seconds; the signal tests train for real in
subprocesses and are marked slow.
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data_utils.corpus import DataWarning, corpus_to_tuple, write_corpus
from data_utils.dataset import Standardizer, from_corpus, load_corpus, load_dataset
from data_utils.fileio import OutputPathError, check_output_path, write_text
from model_utils import metrics
from model_utils.config import Experiment, TrainConfig
from model_utils.experiments import get_experiment
from model_utils.results import RunResult, SeedResult, write_seed, write_summary
from mser.cli import main

REPO = Path(__file__).resolve().parents[1]
SMALL = "synthetic-small"


def one_error(err: str, *names: str) -> str:
    """The single ``error:`` line of ``err``, checked to name each of ``names`` and to carry no traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]


def mser(*args, preexec_fn=None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mser.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, preexec_fn=preexec_fn, **kwargs)


def fake_run(out: Path, *, name: str = "text-bilstm", classes=("hap", "sad"), dialogues=("d0", "d1", "d2", "d3"),
             seeds=(0, 1)) -> RunResult:
    """A run directory as `mser run` writes it, with made-up predictions (no training)."""
    rng = np.random.default_rng(0)
    n, t, c = len(dialogues), 5, len(classes)
    labels = rng.integers(0, c, (n, t)).astype(np.int32)
    mask = np.ones((n, t), bool)
    experiment = Experiment.from_record({**get_experiment("text-bilstm").record(), "name": name})
    config = {"experiment": experiment.record(), "train_config": {}, "data": {"path": "x.pkl"},
              "evaluation": {"kind": "test-split"}}
    run = RunResult(experiment, {"path": "x.pkl", "synthetic": False, "label_scheme": "native", "sha256": "0"},
                    tuple(classes), labels, mask, tuple(dialogues), config=config)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.json", json.dumps(config), overwrite=True)
    for s in seeds:
        probs = rng.dirichlet(np.ones(c), (n, t)).astype(np.float32)
        pred = probs.argmax(-1)
        seed = SeedResult(s, metrics.evaluate(labels, pred, mask, classes), [], 1, 1, 1.0, pred, probs,
                          {m: 0.5 for m in metrics.METRICS})
        write_seed(out, run, seed)
        run.seeds.append(seed)
    write_summary(out, run)
    return run


# ------------------------------------------------------------------------------------------------ 3: a bomb in a run

def test_3_a_predictions_file_that_would_expand_beyond_the_limit_is_refused_from_its_header(tmp_path, capsys):
    run = tmp_path / "run"
    fake_run(run)
    bomb = run / "seed_0" / "predictions.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:  # headers claim 32 GB; the data is absent
        for key in ("y_true", "y_pred", "mask", "dialogue_ids", "probabilities"):
            with archive.open(f"{key}.npy", "w") as member:
                np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False,
                                                              "shape": (200_000, 20_000)})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert main(["table", str(run)]) == 1
    one_error(capsys.readouterr().err, str(bomb), "expand")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing was allocated


# ------------------------------------------------------------------------------------------------ 6: others' files

@pytest.mark.parametrize("stranger", ["seed_photos/cat.jpg", "seed_2/readme.txt", ".models.backup/keep.keras",
                                      "notes.txt"])
def test_6_a_run_never_deletes_what_the_suite_did_not_write(tmp_path, capsys, stranger):
    out = tmp_path / "run"
    fake_run(out, seeds=(0,))
    (out / stranger).parent.mkdir(parents=True, exist_ok=True)
    (out / stranger).write_text("mine")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", str(out),
                 "--force"]) == 1
    one_error(capsys.readouterr().err, str(out), stranger.split("/")[0], "did not write")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert (out / stranger).read_text() == "mine"


def test_6_a_folder_of_someone_else_is_refused_and_an_empty_one_is_taken(tmp_path, capsys):
    from model_utils.rundir import RUN_FILES

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("x")
    assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", str(theirs)]) == 1
    one_error(capsys.readouterr().err, "is not a run directory of this suite", "thesis.tex")
    assert sorted(p.name for p in theirs.iterdir()) == ["thesis.tex"]  # not even a lock file was written there
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", str(empty)]) == 0
    assert sorted(p.name for p in empty.iterdir()) == sorted(["config.json", "seed_0", *RUN_FILES])


def test_6_staging_left_by_a_killed_run_is_removed_but_a_lookalike_is_not(tmp_path):
    from data_utils.fileio import STAGING_MARK, staging_dir
    from model_utils.rundir import check_ours, contents, remove_leftovers

    out = tmp_path / "run"
    fake_run(out, seeds=(0,))
    ours = staging_dir(out, prefix=".models.")  # what a killed run leaves
    (ours / "model.keras").write_text("half")
    found = check_ours(out)
    assert found.leftovers == [ours] and not found.foreign
    remove_leftovers(found)
    assert not ours.exists()
    lookalike = out / ".models.abcdefgh"  # the runner's naming, but neither its mark nor only seed files inside
    lookalike.mkdir()
    (lookalike / "photo.jpg").write_text("x")
    assert contents(out).foreign == [".models.abcdefgh"] and STAGING_MARK not in os.listdir(lookalike)


# ------------------------------------------------------------------------------------------------ 7: --force

def test_7_force_never_replaces_an_input_of_the_same_command(tmp_path, capsys, transcripts_csv):
    mine = tmp_path / "my.csv"
    mine.write_bytes(transcripts_csv.read_bytes()[:20000].rsplit(b"\n", 1)[0] + b"\n")
    before = mine.read_bytes()
    assert main(["features", "text", "--transcripts", str(mine), "--out", str(mine), "--force"]) == 1
    one_error(capsys.readouterr().err, "--out", "also an input")
    assert mine.read_bytes() == before


def test_7_force_replaces_only_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "real.txt"
    target.write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target)
    for path, kind in ((fifo, "a FIFO"), (link, "a symbolic link"), (tmp_path, "a directory")):
        with pytest.raises(OutputPathError, match=kind):
            check_output_path(path, overwrite=True, option="--out")
        with pytest.raises(OSError):
            write_text(path, "replaced", overwrite=True)
    assert fifo.is_fifo() and link.is_symlink() and target.read_text() == "keep"


def test_7_a_device_is_never_replaced_by_the_writer():
    """The writer's own check, without calling it on a device (as root, the old code replaced /dev/null)."""
    from data_utils.fileio import _kind

    assert _kind(Path("/dev/null")) == "a character device"
    with pytest.raises(OutputPathError, match="character device"):
        check_output_path("/dev/null", overwrite=True, option="--out")


# ------------------------------------------------------------------------------------------------ 8: one writer

def test_8_a_second_run_into_a_locked_directory_is_refused_naming_the_holder(tmp_path, capsys):
    from model_utils.rundir import claim

    out = tmp_path / "run"
    with claim(out):
        assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", str(out)]) == 1
        line = one_error(capsys.readouterr().err, str(out), "being written by another run", f"pid {os.getpid()}")
        assert "since" in line
    assert not (out / ".mser.lock").exists()  # the lock goes with its holder
    assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", str(out)]) == 0


def test_8_a_lock_file_whose_holder_died_is_taken_over(tmp_path):
    from model_utils.rundir import claim

    out = tmp_path / "run"
    out.mkdir()
    (out / ".mser.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": "yesterday"}))
    with claim(out):  # no process holds it: taken over
        holder = json.loads((out / ".mser.lock").read_text())
        assert holder["pid"] == os.getpid()


# ------------------------------------------------------------------------------------------------ 9, 10: paths, seeds

@pytest.mark.parametrize("case", ["long-data", "long-out", "dangling-out", "loop-out"])
def test_9_bad_paths_get_one_line(tmp_path, capsys, case):
    args = ["run", "text-bilstm", "--epochs", "1", "--seeds", "1"]
    if case == "long-data":
        args += ["--data", str(tmp_path / ("d" * 5000)), "--out", str(tmp_path / "r")]
    elif case == "long-out":
        args += ["--data", SMALL, "--out", str(tmp_path / ("o" * 300))]
    elif case == "dangling-out":
        (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
        args += ["--data", SMALL, "--out", str(tmp_path / "dangling")]
    else:
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
        args += ["--data", SMALL, "--out", str(tmp_path / "loop")]
    assert main(args) == 1
    one_error(capsys.readouterr().err)


def test_9_a_full_disk_gets_one_line_naming_the_file(tmp_path, transcripts_csv):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # as `ulimit -f`: writes beyond fail

    out = tmp_path / "big.pkl"
    proc = mser("features", "text", "--transcripts", transcripts_csv, "--out", out, preexec_fn=limit, timeout=600)
    assert proc.returncode == 1, proc.stderr
    one_error(proc.stderr, str(tmp_path / "big.text-extractor.npz"), "could not be written")  # written first
    assert os.listdir(tmp_path) == []  # no half-written file, no temporary


def test_9_a_model_too_large_for_memory_gets_one_line(tmp_path):
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))

    proc = mser("run", "cnn-text", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--out", tmp_path / "r",
                "--set", "filters=2000000", preexec_fn=limit, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    one_error(proc.stderr)


def test_10_an_absurd_number_of_seeds_is_refused_at_once(capsys):
    from model_utils.runner import run_experiment

    started = time.perf_counter()
    with pytest.raises(SystemExit):
        main(["run", "text-bilstm", "--data", SMALL, "--seeds", "99999999999"])
    assert "at most 10000 seeds" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at most 10000"):
        run_experiment("text-bilstm", SMALL, seeds=range(99_999_999_999))
    assert time.perf_counter() - started < 30  # building the list took the machine's memory in a minute


# ------------------------------------------------------------------------------------------------ 11: scale

@pytest.mark.parametrize("scale", [1e-9, 1e20, 1e37])
def test_11_standardisation_is_float64_and_scale_aware(scale):
    ds = load_dataset(SMALL)
    reference = Standardizer.fit(ds).transform(ds).features["text"]
    scaled = type(ds)(**{**ds.__dict__, "features": {**ds.features, "text": ds.features["text"] * np.float32(scale)}})
    with pytest.warns(DataWarning, match="extreme scale"):
        standardised = Standardizer.fit(scaled).transform(scaled).features["text"]
    assert np.isfinite(standardised).all()
    np.testing.assert_allclose(standardised, reference, atol=1e-4)


def test_11_a_constant_dimension_is_centred_not_blown_up():
    ds = load_dataset(SMALL)
    text = ds.features["text"].copy()
    text[..., 0] = np.where(ds.present, 7.0, 0.0)
    ds = type(ds)(**{**ds.__dict__, "features": {**ds.features, "text": text}})
    out = Standardizer.fit(ds).transform(ds).features["text"]
    assert np.abs(out[..., 0]).max() == 0.0


# ------------------------------------------------------------------------------------------------ 12: nothing scored

def test_12_a_test_split_with_nothing_scored_is_a_warning_and_a_refusal_before_training(tmp_path, capsys):
    corpus = load_corpus(SMALL)
    layout = list(corpus_to_tuple(corpus))
    fru = list(corpus.label_names).index("fru")
    for did in corpus.splits["test"]:
        layout[2][did] = [fru] * len(layout[2][did])
    path = tmp_path / "onlyfru.pkl"
    path.write_bytes(__import__("pickle").dumps(tuple(layout), protocol=4))
    assert main(["data", "summary", "--data", str(path), "--scheme", "standard4"]) == 0
    assert "the test split" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["run", "text-bilstm", "--data", str(path), "--scheme", "standard4", "--epochs", "1", "--seeds", "1",
                 "--out", str(out)]) == 1
    one_error(capsys.readouterr().err, str(path), "test split", "standard4")
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------------------------------------ 13: CSV

def test_13_csv_outputs_are_quoted_and_never_formulas(tmp_path, capsys):
    run = tmp_path / "run"
    fake_run(run, name="=HYPERLINK(\"http://x\")", classes=("=1+1", "a,b", "line\nbreak", "@sum"))
    matrix = (run / "seed_0" / "confusion_matrix.csv").read_text()
    import csv

    rows = list(csv.reader(matrix.splitlines(keepends=True)))
    assert rows[0] == ["true\\pred", "'=1+1", "a,b", "line\nbreak", "'@sum"]
    assert len(rows) == 5 and all(len(r) == 5 for r in rows)
    assert main(["table", str(run), "--csv", str(tmp_path / "t.csv")]) == 0
    capsys.readouterr()
    table = list(csv.reader((tmp_path / "t.csv").read_text().splitlines(keepends=True)))
    assert table[1][0] == "'=HYPERLINK(\"http://x\")"
    from data_utils.fileio import csv_text

    assert csv_text([[-1.5, 3]]) == "-1.5,3\n"  # numbers stay numbers


# ------------------------------------------------------------------------------------------------ 14, 15: reports

EVIL = "<img src=x onerror=alert(5)>"


def test_14_data_derived_strings_never_become_html_in_reports(tmp_path, small_corpus):
    from model_utils.report import data_banner, frame_to_markdown, styled
    import pandas as pd

    corpus = type(small_corpus)(**{**small_corpus.__dict__, "source": str(tmp_path / f"{EVIL}.pkl"), "synthetic": False})
    ds = from_corpus(corpus)
    banner = data_banner(ds)._repr_markdown_()
    assert "<img" not in banner and "&lt;img" in banner
    frame = pd.DataFrame({EVIL: [EVIL]}, index=pd.Index([EVIL], name=f"index {EVIL}"))
    html = styled(frame, f"title {EVIL}", ds).to_html()
    assert "<img" not in html and html.count("&lt;img") >= 3
    markdown = frame_to_markdown(frame, title=EVIL, data=ds)
    assert "<img" not in markdown


def test_15_only_poria_et_al_s_file_is_called_iemocap(tmp_path, fixture_pkl):
    from data_utils.identity import AT_IEMOCAP_PATH, describe_source
    from model_utils.report import data_banner

    at_default = tmp_path / "dataset" / "iemocap" / "raw" / "IEMOCAP_features_raw.pkl"
    at_default.parent.mkdir(parents=True)
    at_default.write_bytes(fixture_pkl.read_bytes())
    who = describe_source(str(at_default), synthetic=False, dialogues=10)
    assert who["name"] == AT_IEMOCAP_PATH and not who["poria"] and len(who["sha256"]) == 64
    banner = data_banner(load_dataset(str(at_default)), settings="QUICK smoke run")._repr_markdown_()
    assert "Poria et al.'s file: its hash differs" in banner and "10 dialogues" in banner and "QUICK" in banner


def test_15_results_md_names_its_data_with_hash_and_dialogues(tmp_path):
    from data_utils.identity import describe_source
    from mser.reproduce import collect_results

    (tmp_path / "tables").mkdir()
    path = collect_results(tmp_path, data=describe_source("synthetic (seed 0)", synthetic=True, dialogues=151),
                           quick=True, seconds=60)
    text = path.read_text()
    assert "151 dialogues" in text and "SYNTHETIC" in text and "QUICK" in text


def test_15_figures_say_when_epochs_were_capped(tmp_path):
    from model_utils.report import plot_history

    run = fake_run(tmp_path / "run")
    run.config["differs_from_defaults"] = ["epochs"]
    run.config["train_config"] = {"epochs": 6}
    figure = plot_history(run)
    assert "epochs capped at 6" in figure._suptitle.get_text()


# ------------------------------------------------------------------------------------------------ 16: honest words

def test_16_compare_says_how_many_dialogues_it_resampled_and_warns_below_ten(tmp_path, capsys):
    fake_run(tmp_path / "a")
    fake_run(tmp_path / "b")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "the 4 test dialogues" in out and "only 4 dialogues" in out


def test_16_a_closed_pipe_ends_quietly():
    proc = subprocess.run(f"{sys.executable} -m mser.cli data summary --data {SMALL} | head -c 10", shell=True,
                          capture_output=True, text=True, cwd=REPO)
    assert proc.stdout == "{\n  \"sourc" and proc.stderr == ""


def test_16_each_data_warning_is_printed_once_per_run(tmp_path):
    corpus = load_corpus(SMALL)
    layout = list(corpus_to_tuple(corpus))
    sad = list(corpus.label_names).index("sad")
    for did in layout[2]:  # no sad utterance anywhere: a class without training utterances
        layout[2][did] = [0 if lab == sad else lab for lab in layout[2][did]]
    path = tmp_path / "nosad.pkl"
    path.write_bytes(__import__("pickle").dumps(tuple(layout), protocol=4))
    proc = mser("run", "cnn-text", "--data", path, "--epochs", "1", "--seeds", "2", "--workers", "2", "--quiet",
                "--out", tmp_path / "r", timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "no training utterances" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: "), proc.stderr
    assert "DataWarning" not in proc.stderr


# ------------------------------------------------------------------------------------------------ 17: signals

def _children(pid: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("to_group", [False, True], ids=["parent", "group"])
def test_17_sigterm_ends_the_workers_and_leaves_no_staging(tmp_path, to_group):
    import psutil

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "mser.cli", "run", "text-context", "--data", SMALL, "--seeds", "2",
                             "--workers", "2", "--epochs", "100", "--out", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert _wait_for(lambda: len(list(out.glob(".models.*"))) == 2, 240), "the workers never started training"
        workers = _children(proc.pid)
        (os.killpg if to_group else os.kill)(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:  # whatever happened, nothing of this test outlives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode in (130, 143), err
    assert "Traceback" not in err and "leaked semaphore" not in err, err
    assert "interrupted." in err
    assert _wait_for(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                     for p in workers), 15), "workers outlived the run"
    assert not list(out.glob(".models.*")) and not list(out.glob(".seed_*")) and not (out / ".mser.lock").exists()


@pytest.mark.slow
def test_17_ctrl_c_while_loading_prints_one_line(tmp_path):
    for delay in (0.5, 2.0, 4.0):
        proc = subprocess.Popen([sys.executable, "-m", "mser.cli", "run", "text-bilstm", "--data", "synthetic",
                                 "--seeds", "1", "--out", str(tmp_path / f"r{delay}")], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, (delay, err)
        if proc.returncode != 0:
            assert proc.returncode == 130 and err.strip().splitlines()[-1].startswith("interrupted."), (delay, err)


# ------------------------------------------------------------------------------------------------ 18: NaN, reproduce

def test_18_optimizer_settings_are_range_checked(capsys):
    for bad in ("train.beta_1=1", "train.beta_2=1.5", "train.epsilon=0", "train.beta_1=-0.1"):
        assert main(["run", "text-bilstm", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--set", bad]) == 1
        one_error(capsys.readouterr().err, bad.split("=")[0].split(".")[1])
    with pytest.raises(ValueError, match=r"beta_1 must be in \[0, 1\)"):
        TrainConfig(beta_1=1.0)


def test_18_a_model_with_non_finite_weights_is_never_scored():
    import keras

    from model_utils.training import TrainingDivergedError, check_finite

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    check_finite(model, np.ones((4, 2)))
    with pytest.raises(TrainingDivergedError, match="non-finite probabilities"):
        check_finite(model, np.array([[np.nan, 1.0]]))
    kernel = model.layers[0].kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    with pytest.raises(TrainingDivergedError, match="non-finite weights"):
        check_finite(model)


def test_18_ctrl_c_stops_every_notebook_of_reproduce_and_starts_no_other(tmp_path, monkeypatch):
    import papermill

    import mser.reproduce as reproduce

    started, sleepers = [], []

    def fake_execute(source, executed, **kwargs):  # a "kernel": a child process that runs until stopped
        started.append(Path(source).stem)
        sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True)
        sleepers.append(sleeper)
        sleeper.wait()
        raise RuntimeError("the kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()  # Ctrl-C, a real signal
    with pytest.raises(KeyboardInterrupt):
        reproduce.reproduce(quick=True, data=SMALL, reports=tmp_path / "reports", try_download=False)
    assert len(started) == 2  # two at a time; the third never started
    assert all(s.poll() is not None for s in sleepers)  # every kernel was stopped
    assert not (tmp_path / "reports" / "results.md").exists()


def test_18_the_sentence_file_of_the_text_worker_is_private(monkeypatch, tmp_path):
    import data_utils.sentence_encoder as tf_features

    seen = {}

    class FakePopen:
        def __init__(self, argv, **kwargs):
            src = Path(argv[-2])
            seen["file"] = src.stat().st_mode & 0o777
            seen["folder"] = src.parent.stat().st_mode & 0o777
            np.save(argv[-1], np.zeros((1, 384), np.float32))
            self.stderr, self.stdout = iter(()), __import__("io").StringIO("")

        def wait(self):
            return 0

        def poll(self):
            return 0

    monkeypatch.setattr(tf_features.subprocess, "Popen", FakePopen)
    tf_features.sentence_embeddings(["private words"])
    assert seen == {"file": 0o600, "folder": 0o700}


# ------------------------------------------------------------------------------------------------ 19: messages

def test_19_a_tampered_run_folder_names_its_file(tmp_path, capsys):
    run = tmp_path / "run"
    fake_run(run)
    result = run / "seed_0" / "result.json"
    record = json.loads(result.read_text())
    del record["metrics"]
    result.write_text(json.dumps(record))
    assert main(["table", str(run)]) == 1
    one_error(capsys.readouterr().err, str(result), "metrics")

    fake_run(run := tmp_path / "run2")
    predictions = run / "seed_1" / "predictions.npz"
    np.savez(predictions, y_true=np.zeros((4, 5)), y_pred=np.array([None] * 20, dtype=object).reshape(4, 5),
             mask=np.ones((4, 5), bool), dialogue_ids=np.array(["a", "b", "c", "d"]))
    assert main(["table", str(run)]) == 1
    line = one_error(capsys.readouterr().err, str(predictions), "object")
    assert "allow_pickle" not in line


def test_19_a_bad_hyperparameter_value_names_the_hyperparameter(capsys):
    assert main(["run", "multimodal", "--data", SMALL, "--epochs", "1", "--seeds", "1", "--set", "cell=bogus"]) == 1
    one_error(capsys.readouterr().err, "multimodal", "cell", "bogus")


def test_19_an_opensmile_crash_names_the_wav_it_was_reading(tmp_path):
    from data_utils.audio_features import AudioFeatureError, _read_result

    current = tmp_path / "current.txt"
    current.write_text("/audio/Ses01F_impro01_F003.wav")
    crashed = subprocess.CompletedProcess([], -11, "", "")
    with pytest.raises(AudioFeatureError, match=r"Ses01F_impro01_F003\.wav: .*crashed \(exit code -11, SIGSEGV\)"):
        _read_result(tmp_path / "result.json", crashed, current)


def test_write_corpus_goes_through_the_same_rules(tmp_path, small_corpus):
    fifo = tmp_path / "fifo.pkl"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="FIFO"):
        write_corpus(small_corpus, fifo, overwrite=True)
    assert fifo.is_fifo()


def test_a_run_directory_error_is_an_output_error():
    from model_utils.rundir import RunDirectoryError

    assert issubclass(RunDirectoryError, FileExistsError)
