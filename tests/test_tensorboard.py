"""Opt-in TensorBoard logs (``mser run --tensorboard DIR``, ``run_many(..., tensorboard=DIR)``): Keras' own callback
writes the training loss and every validation metric per epoch under ``DIR/<run name>/seed_<s>/``, switching it on
changes no number, and a folder that would put logs into a run directory, or a missing tensorboard package, is
refused before any data is read. The tests that write logs need the tensorboard extra (make setup-tensorboard; CI
installs it) and skip without it."""
from __future__ import annotations

import importlib.util
import json
import sys

import keras
import numpy as np
import pytest

from data_utils.fileio import OutputPathError
from model_utils import training
from model_utils.metrics import METRICS
from model_utils.runner import run_experiment, run_many
from mser.cli import main

SMALL = "synthetic-small"
RUN = ["run", "text-bilstm", "--data", SMALL, "--seeds", "1", "--epochs", "2", "--quiet"]
TRAIN_TAGS = {"epoch_loss", "epoch_learning_rate"}
VALID_TAGS = {"epoch_loss", *(f"epoch_{m}" for m in METRICS)}
INSTALL = "make setup-tensorboard"

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="the tensorboard extra is not installed (make setup-tensorboard)")


def scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` read back from the event files of one writer's folder (``train/``,
    ``validation/``); Keras writes TF2 summaries, which the accumulator lists as tensors."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {tag: [(e.step, float(make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
            for tag in events.Tags()["tensors"]}


def assert_logged(folder, history: list[dict]) -> None:
    """``folder`` (one seed's or fold's) holds event files whose scalars are ``history``, epoch by epoch (float32:
    TensorBoard's precision; step = epoch - 1, as Keras counts)."""
    assert list(folder.glob("train/events.out.tfevents.*")) and list(folder.glob("validation/events.out.tfevents.*"))
    train, valid = scalars(folder / "train"), scalars(folder / "validation")
    assert set(train) == TRAIN_TAGS and set(valid) == VALID_TAGS
    assert train["epoch_loss"] == [(r["epoch"] - 1, pytest.approx(r["loss"], rel=1e-6)) for r in history]
    for key in ("loss", *METRICS):
        assert valid[f"epoch_{key}"] == [(r["epoch"] - 1, pytest.approx(r[f"val_{key}"], rel=1e-6)) for r in history]


@pytest.fixture
def no_data(monkeypatch):
    """Reading any data fails the test: what is refused must be refused before."""
    from model_utils.run import plan

    monkeypatch.setattr(plan, "load_dataset", lambda *a, **k: pytest.fail("data were read"))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: "), err
    return err


# ------------------------------------------------------------------------------------------------ training.fit

def test_callbacks_after_the_selection_find_the_validation_row_in_keras_logs_and_change_nothing(small_corpus):
    from data_utils.dataset import from_corpus, with_validation_split

    ds = with_validation_split(from_corpus(small_corpus, "standard4"), 0.25)
    config = training.TrainConfig(epochs=3, patience=3, learning_rate=1e-2, batch_size=4)

    class Recorder(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.rows: list[dict] = []

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append(dict(logs))

    def train(callbacks):
        training.set_seed(0)
        text = keras.Input((None, ds.dims["text"]), name="text")
        model = keras.Model([text, keras.Input((None,), name="present")],
                            keras.layers.Dense(ds.num_classes, activation="softmax")(keras.layers.Dense(8)(text)))
        return model, training.fit(model, ds.subset("train"), ds.subset("valid"), ("text",), config, verbose=False,
                                   callbacks=callbacks)

    recorder = Recorder()
    plain, without = train([])
    logged, with_ = train([recorder])
    assert with_.history == without.history and with_.validation == without.validation
    assert all((a == b).all() for a, b in zip(plain.get_weights(), logged.get_weights()))
    assert len(recorder.rows) == len(with_.history) == 3
    for logs, row in zip(recorder.rows, with_.history):  # what a TensorBoard callback would write
        assert {k: logs[k] for k in row if k != "epoch"} == {k: v for k, v in row.items() if k != "epoch"}


# ------------------------------------------------------------------------------------------------ mser run

@needs_tensorboard
def test_mser_run_logs_every_epoch_into_the_folder_and_changes_no_number(tmp_path):
    board = tmp_path / "tb"
    board.mkdir()
    (board / "earlier.txt").write_text("earlier logs")  # TensorBoard's folder may hold earlier logs: all kept
    assert main([*RUN, "--out", str(tmp_path / "plain")]) == 0
    assert main([*RUN, "--out", str(tmp_path / "logged"), "--tensorboard", str(board)]) == 0

    plain, logged = (json.loads((tmp_path / r / "summary.json").read_text()) for r in ("plain", "logged"))
    assert plain["metrics"] == logged["metrics"] and plain["ensemble"] == logged["ensemble"]
    with np.load(tmp_path / "plain/seed_0/predictions.npz") as a, \
            np.load(tmp_path / "logged/seed_0/predictions.npz") as b:
        assert a.files == b.files
        for key in a.files:  # bit for bit
            assert (a[key].dtype, a[key].shape) == (b[key].dtype, b[key].shape)
            assert a[key].tobytes() == b[key].tobytes()

    assert (board / "earlier.txt").read_text() == "earlier logs"
    history = json.loads((tmp_path / "logged/seed_0/result.json").read_text())["history"]
    assert len(history) == 2
    assert_logged(board / "text-bilstm" / "seed_0", history)
    assert not [p for p in (tmp_path / "logged").rglob("*") if "tfevents" in p.name]  # the run directory: ours only


@needs_tensorboard
@pytest.mark.parametrize("where", ["the run directory", "inside it", "another run directory"])
def test_a_log_folder_in_a_run_directory_is_refused_in_one_line_before_any_data(tmp_path, capsys, no_data, where):
    out = tmp_path / "runs" / "text-bilstm"
    board = {"the run directory": out, "inside it": out / "tb", "another run directory": tmp_path / "old"}[where]
    if where == "another run directory":  # DIR/text-bilstm is a run directory of an earlier command
        (board / "text-bilstm").mkdir(parents=True)
        (board / "text-bilstm" / "config.json").write_text(json.dumps(
            {"experiment": {}, "train_config": {}, "data": {}, "evaluation": {}}))
    assert main([*RUN, "--out", str(out), "--tensorboard", str(board)]) == 1
    err = one_error_line(capsys)
    assert err.startswith("error: --tensorboard ") and "run directory" in err
    assert not out.exists() and not (tmp_path / "runs" / "text-bilstm" / "tb").exists()


@needs_tensorboard
def test_run_many_refuses_logs_that_would_land_in_its_run_directories(tmp_path, no_data):
    with pytest.raises(OutputPathError, match="run directory"):
        run_many(["text-bilstm"], SMALL, out_root=tmp_path, tensorboard=tmp_path, seeds=[0], epochs=1, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_without_the_tensorboard_package_the_flag_fails_at_once_with_how_to_install_it(tmp_path, capsys, monkeypatch,
                                                                                      no_data):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises ImportError
    assert main([*RUN, "--out", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 1
    err = one_error_line(capsys)
    assert err.startswith("error: --tensorboard needs the tensorboard package") and INSTALL in err
    with pytest.raises(ValueError, match=INSTALL):
        run_many(["text-bilstm"], SMALL, tensorboard=tmp_path / "tb", seeds=[0], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=INSTALL):
        run_experiment("text-bilstm", SMALL, tensorboard=tmp_path / "tb", seeds=[0], epochs=1, verbose=0)
    assert list(tmp_path.iterdir()) == []


def test_off_by_default_a_run_needs_no_tensorboard(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    result = run_experiment("text-bilstm", SMALL, seeds=[0], epochs=1, verbose=0, out=tmp_path / "run")
    assert len(result.seeds) == 1 and [p.name for p in tmp_path.iterdir()] == ["run"]


# ------------------------------------------------------------------------------------------------ workers, folds

@needs_tensorboard
@pytest.mark.slow
def test_worker_processes_log_each_seed_and_each_fold_of_a_cross_validated_run(tmp_path):
    board = tmp_path / "tb"
    results = run_many(["text-bilstm"], SMALL, seeds=[0, 1], epochs=1, cv="sessions", workers=2, verbose=0,
                       progress=False, tensorboard=board)
    seeds = {s.seed: s for s in results["text-bilstm"].seeds}
    root = board / "text-bilstm--cv-sessions"
    assert sorted(p.name for p in root.iterdir()) == ["seed_0", "seed_1"]
    for seed, result in seeds.items():
        assert sorted(p.name for p in (root / f"seed_{seed}").iterdir()) == [f"fold_{f.session}" for f in result.folds]
        for fold in result.folds:
            assert_logged(root / f"seed_{seed}" / f"fold_{fold.session}", fold.history)
