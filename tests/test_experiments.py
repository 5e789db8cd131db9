"""Named experiments, the public experiment API, the multi-seed runner, run directories (provenance, resume,
cross-validation) and the `mser run | table | compare | list | bench` commands."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from data_utils.dataset import load_dataset
from data_utils.fileio import OutputExistsError
from data_utils.identity import SYNTHETIC_NAME
from model_utils.architectures import ARCHITECTURES, ModelInputs, default_hparams, register_architecture, \
    required_inputs
from model_utils.config import GROUPS, Experiment, TrainConfig
from model_utils.experiments import EXPERIMENTS, get_experiment
from model_utils.metrics import METRICS
from model_utils.report import compare_runs, runs_table, to_markdown
from model_utils.results import read_run
from model_utils.rundir import RUN_FILES
from model_utils.registry import check_experiment
from model_utils.runner import prepare_data, resolve_experiment, run_experiment, run_many

REPO = Path(__file__).resolve().parents[1]
SMALL = "synthetic-small"
PROVENANCE = ("git_commit", "python", "tensorflow", "keras", "numpy", "command", "started")


def mser(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "mser.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, **kwargs)


def _comparable(summary: dict) -> dict:
    """A summary without what differs between two runs of the same configuration: wall times and provenance."""
    return {k: v for k, v in summary.items() if k not in ("train_seconds", "provenance")}


# ------------------------------------------------------------------------------------------------ the registry

@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_is_well_formed(name):
    e = EXPERIMENTS[name]
    check_experiment(e)  # made without the registry (so `mser list` needs no backend): checked here
    assert e.arch in ARCHITECTURES
    required_inputs(e.arch, e.modalities)  # raises on a modality set the architecture does not take
    assert set(e.hparams) <= set(default_hparams(e.arch)), "unknown hyperparameters"
    assert e.group in GROUPS and e.base == e.name and not e.overrides


def test_unknown_experiment_names_its_neighbours():
    with pytest.raises(KeyError, match="unknown experiment 'rnn-txt'.*rnn-text"):
        get_experiment("rnn-txt")


def test_prepare_data_holds_out_validation_dialogues_and_standardises_on_train():
    ds = load_dataset(SMALL)
    train, valid, test = prepare_data(get_experiment("multimodal"), ds)
    ids = [set(x.dialogue_ids) for x in (train, valid, test)]
    assert ids[0] and ids[1] and ids[2]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] == set(ds.splits["train"]) and ids[2] == set(ds.splits["test"])
    assert train.standardized and prepare_data("text-bilstm", ds)[0].standardized  # every experiment, by default
    assert not prepare_data(get_experiment("multimodal-no-standardize"), ds)[0].standardized


def test_an_experiment_needing_an_absent_modality_refuses(small_corpus):
    import dataclasses

    from data_utils.dataset import from_corpus

    text_only = from_corpus(dataclasses.replace(small_corpus, modalities=("text",)))
    with pytest.raises(ValueError, match="'multimodal' needs audio, visual features") as refused:
        prepare_data(get_experiment("multimodal"), text_only)
    fit = str(refused.value).split("experiments these data fit: ")[1].split(", ")
    assert {"text-bilstm", "text-context", "timnet-text", "rnn-text"} <= set(fit)
    assert not {"multimodal", "timnet-audio", "early-fusion"} & set(fit)
    prepare_data(get_experiment("text-bilstm"), text_only)  # text-only experiments run


# ------------------------------------------------------------------------------------------------ Experiment

def test_an_experiment_is_checked_where_it_is_resolved_not_when_created():
    """As scikit-learn checks parameters at `fit`: creating a record asks no registry (no import circle), and
    resolving it, which every runner does before anything trains, refuses what does not fit."""
    with pytest.raises(ValueError, match="group must be one of"):  # what needs no registry: at once
        Experiment("x", "rnn", ("text",), group="mine")
    unknown = Experiment("x", "bilstmm", ("text",))  # a record: nothing else is checked yet
    with pytest.raises(ValueError, match="unknown architecture 'bilstmm'.*register_architecture"):
        run_experiment(unknown, "synthetic-small", seeds=[0], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="unknown architecture 'bilstmm'.*register_architecture"):
        resolve_experiment(Experiment("x", "bilstmm", ("text",)))
    with pytest.raises(ValueError, match=r"text_bilstm takes exactly the modalities \('text',\)"):
        resolve_experiment(Experiment("x", "text_bilstm", ("audio",)))
    with pytest.raises(ValueError, match=r"\['unitz'\] are not hyperparameters of architecture 'rnn'.*units"):
        resolve_experiment(Experiment("x", "rnn", ("text",), hparams={"unitz": 3}))
    with pytest.raises(ValueError, match=r"\['lr'\] are not training settings.*learning_rate"):
        resolve_experiment(Experiment("x", "rnn", ("text",), train={"lr": 3e-4}))
    with pytest.raises(ValueError, match="class_weight must be"):
        resolve_experiment(Experiment("x", "rnn", ("text",), train={"class_weight": "inverse"}))
    with pytest.raises(ValueError, match=r"unknown modalities \['txt'\]"):
        resolve_experiment(Experiment("x", "rnn", ("txt",)))
    with pytest.raises(ValueError, match=r"units='big': expected a whole number like the default 64"):
        resolve_experiment(Experiment("x", "rnn", ("text",), hparams={"units": "big"}))
    with pytest.raises(ValueError, match="TrainConfig.learning_rate must be like its default 0.001, got 'fast'"):
        resolve_experiment(Experiment("x", "rnn", ("text",), train={"learning_rate": "fast"}))


def test_experiments_are_hashable_and_overrides_make_a_new_named_one():
    base = get_experiment("text-bilstm")
    derived = resolve_experiment(base, ["units=16", "train.learning_rate=3e-4", "train.standardize=false"])
    assert derived.name == "text-bilstm[train.learning_rate=0.0003,train.standardize=false,units=16]"
    assert derived.base == "text-bilstm" and dict(derived.hparams) == {"units": 16}
    assert derived.train_config().learning_rate == 3e-4 and derived.train_config().standardize is False
    assert derived == resolve_experiment(base, {"units": 16, "train.learning_rate": 0.0003, "train.standardize": False})
    assert len({base, derived, resolve_experiment(base, [])}) == 2  # hashable, equal when equal
    assert resolve_experiment(resolve_experiment(base, ["units=16"]), ["dropout=0.1"]).name == \
        "text-bilstm[dropout=0.1,units=16]"


def test_overrides_refuse_unknown_keys_with_the_valid_ones_and_wrong_types():
    base = get_experiment("text-bilstm")
    with pytest.raises(ValueError, match=r"unknown override key 'no_such_key'; valid keys: units, dropout, hidden, "
                                         r"train\.epochs"):
        resolve_experiment(base, ["no_such_key=1"])
    with pytest.raises(ValueError, match="unknown override key 'train.lr'"):
        resolve_experiment(base, ["train.lr=1"])
    with pytest.raises(ValueError, match=r"override units='many': expected a whole number like the default 64"):
        resolve_experiment(base, ["units=many"])
    for huge in ("1e400", "inf", "nan"):  # Python reads 1e400 as inf: refused like inf, before any training
        with pytest.raises(ValueError, match=rf"override train.weight_decay='?{huge}'?: expected a finite number"):
            resolve_experiment(base, [f"train.weight_decay={huge}"])
        with pytest.raises(ValueError, match=r"override units=.*: expected a whole number like the default 64"):
            resolve_experiment(base, [f"units={huge}"])
    with pytest.raises(ValueError, match="TrainConfig.learning_rate must be like its default 0.001, got inf"):
        TrainConfig(learning_rate=float("inf"))
    with pytest.raises(ValueError, match="TrainConfig.clipnorm must be like its default None, got nan"):
        TrainConfig(clipnorm=float("nan"))
    with pytest.raises(ValueError, match="not of the form KEY=VALUE"):
        resolve_experiment(base, ["units"])
    assert resolve_experiment(base, ["units=64"]) is base  # the value it already has: no change, no new name


def test_batch_overrides_reach_the_experiments_that_take_them_and_refuse_what_fits_none():
    from model_utils.run.plan import resolve_experiments

    batch = ["timnet-text", "cnn-text", "text-bilstm"]
    exps = resolve_experiments(batch, ["filters=16", "train.learning_rate=3e-4"])
    assert [dict(e.overrides) for e in exps] == [
        {"filters": 16, "train.learning_rate": 3e-4}, {"filters": 16, "train.learning_rate": 3e-4},
        {"train.learning_rate": 3e-4}]  # text_bilstm has no filters; the training setting reaches all
    by_name = resolve_experiments(batch, {"cnn-text": ["filters=8"], "multimodal": ["d_model=8"]})
    assert [dict(e.overrides) for e in by_name] == [{}, {"filters": 8}, {}]  # multimodal: another batch's entry
    with pytest.raises(ValueError, match=r"override 'd_model' fits no experiment of this batch \(their "
                                         r"hyperparameters: timnet-text: filters.*cnn-text: filters"):
        resolve_experiments(batch, ["d_model=8"])
    with pytest.raises(ValueError, match=r"'cnn-txt', which is no experiment"):
        resolve_experiments(batch, {"cnn-text": ["filters=8"], "cnn-txt": ["filters=8"]})
    with pytest.raises(ValueError, match="unknown override key 'train.lr'"):
        resolve_experiments(batch, ["train.lr=1"])


def test_a_rerun_that_replaces_a_different_configuration_says_so(tmp_path, capsys):
    run_experiment("text-bilstm", SMALL, seeds=[0], epochs=1, out=tmp_path / "r", verbose=0)
    capsys.readouterr()
    run_experiment("text-bilstm", SMALL, seeds=[0], epochs=1, out=tmp_path / "r", verbose=0, overwrite=True,
                   overrides=["units=8"])
    assert re.search(r"replacing seeds \[0\] of a different configuration \(hparams\.units: 64 there, 8 now",
                     capsys.readouterr().err)


def test_mser_run_with_two_workers_prints_a_line_per_finished_seed_and_json_on_stdout(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mser.cli", "run", "text-bilstm", "--data", SMALL, "--epochs", "1",
                           "--seeds", "2", "--workers", "2", "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("[text-bilstm] seed ")]
    pattern = r"\[text-bilstm\] seed ([01]): accuracy (\d\.\d{4}), macro-F1 (\d\.\d{4}) \(best epoch 1, \d+\.\d s\)"
    found = {int(m.group(1)): float(m.group(3)) for m in map(lambda x: re.fullmatch(pattern, x), lines) if m}
    assert sorted(found) == [0, 1] and len(lines) == 2, proc.stderr
    assert [round(v, 4) for v in summary["metrics"]["macro_f1"]["per_seed"]] == [found[0], found[1]]


# ------------------------------------------------------------------------------------------------ run directories

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    a = run_experiment("text-bilstm", SMALL, seeds=[0, 1], epochs=2, out=out / "a", verbose=0)
    b = run_experiment("early-fusion", SMALL, seeds=[0, 1], epochs=2, out=out / "b", verbose=0)
    return out, a, b


def test_run_directory_has_the_documented_summary_and_provenance(two_runs):
    out, a, _ = two_runs
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert summary["experiment"] == "text-bilstm"
    assert summary["dataset"] == {"path": SMALL, "synthetic": True, "label_scheme": "merged4",
                                  "sha256": "synthetic:synthetic-small", "name": "SYNTHETIC data (not IEMOCAP)",
                                  "file": "synthetic-small (seed 0)", "dialogues": 26, "poria": False}
    assert summary["seeds"] == [0, 1]
    for m in METRICS:
        entry = summary["metrics"][m]
        assert set(entry) == {"mean", "std", "per_seed"} and len(entry["per_seed"]) == 2
        assert entry["mean"] == pytest.approx(np.mean(entry["per_seed"]))
        assert entry["std"] == pytest.approx(np.std(entry["per_seed"], ddof=1))
        assert 0 <= summary["ensemble"][m] <= 1
    assert summary["ensemble"]["seeds"] == 2
    config = summary["config"]
    assert config["epochs_cap"] == 2 and config["train_config"]["epochs"] == 2
    assert config["train_config"] == {**vars(TrainConfig().resolved()), "epochs": 2}  # recorded resolved
    assert config["hparams"] == default_hparams("text_bilstm")
    assert config["evaluation"]["validation_dialogues"] == list(prepare_data("text-bilstm", SMALL)[1].dialogue_ids)
    assert config["differs_from_defaults"] == ["epochs"]
    assert all(summary["provenance"][k] for k in PROVENANCE)
    assert len(summary["train_seconds"]["per_seed"]) == 2
    cm = np.array(summary["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 2 * a.test.mask.sum()  # real utterances only, both seeds
    for seed in (0, 1):
        folder = out / "a" / f"seed_{seed}"
        assert (folder / "confusion_matrix.csv").read_text().startswith("true\\pred,happy,angry,sad,neutral")
        assert keras.models.load_model(folder / "model.keras").name == "text_bilstm"
        with np.load(folder / "predictions.npz") as f:
            assert np.all(f["y_pred"][~f["mask"]] == -1)
            np.testing.assert_allclose(f["probabilities"][f["mask"]].sum(-1), 1, atol=1e-5)


def test_the_same_seed_gives_identical_metrics(two_runs):
    _, a, _ = two_runs
    again = run_experiment("text-bilstm", SMALL, seeds=[1], epochs=2, verbose=0)
    assert again.seeds[0].metrics == a.seeds[1].metrics
    np.testing.assert_array_equal(again.seeds[0].predictions, a.seeds[1].predictions)


def test_a_different_config_is_refused_before_training_and_the_same_one_resumes(two_runs, monkeypatch):
    out, a, _ = two_runs
    with pytest.raises(OutputExistsError, match=r"different configuration \(.*epochs.*--force"):
        run_experiment("text-bilstm", SMALL, seeds=[0], epochs=3, out=out / "a", verbose=0)
    from model_utils.run import seed

    monkeypatch.setattr(seed, "train_seed", lambda *a, **k: pytest.fail("a complete seed was retrained"))
    again = run_experiment("text-bilstm", SMALL, seeds=[0, 1], epochs=2, out=out / "a", verbose=0)
    assert again.summary()["metrics"] == a.summary()["metrics"]
    # a run recorded before TrainConfig.weight_decay existed is the same configuration as weight_decay=0
    recorded = json.loads((out / "a" / "config.json").read_text())
    del recorded["train_config"]["weight_decay"]
    (out / "a" / "config.json").write_text(json.dumps(recorded))
    again = run_experiment("text-bilstm", SMALL, seeds=[0, 1], epochs=2, out=out / "a", verbose=0)
    assert again.summary()["metrics"] == a.summary()["metrics"]


def test_table_and_compare(two_runs):
    out, a, b = two_runs
    table = runs_table([out / "a", out / "b"])
    assert list(table["experiment"]) == ["text-bilstm", "early-fusion"]
    assert table.loc[0, "macro_f1"] == pytest.approx(a.mean("macro_f1"))
    assert table.loc[0, "differs"] == "epochs cap 2"
    md = to_markdown(table)
    assert "SYNTHETIC data (not IEMOCAP)" in md and "| text-bilstm † | 2 |" in md
    assert "† text-bilstm: epochs cap 2 (not the experiment's defaults)" in md
    c = compare_runs(out / "a", out / "b", n_boot=200)
    assert c["a"] == "text-bilstm" and c["b"] == "early-fusion" and c["n_boot"] == 200
    assert c["diff"] == pytest.approx(b.mean("macro_f1") - a.mean("macro_f1"), abs=1e-9)
    assert compare_runs(a, b, n_boot=200) == c  # in memory and on disk: one code path


def test_cli_list_table_and_compare(two_runs, tmp_path):
    out, _, _ = two_runs
    listed = mser("list").stdout
    assert all(name in listed for name in EXPERIMENTS)
    assert mser("list", "--group", "finall").returncode == 2  # choices come from the registry
    table = mser("table", out / "a", out / "b", "--csv", tmp_path / "t.csv")
    assert table.returncode == 0 and "SYNTHETIC" in table.stdout and "Ensemble macro-F1" in table.stdout
    assert "ens_macro_f1" in (tmp_path / "t.csv").read_text()
    compare = mser("compare", out / "a", out / "b", "--n-boot", 100)
    assert compare.returncode == 0 and re.search(r"paired bootstrap over the \d+ test dialogues", compare.stdout)
    missing = mser("table", tmp_path / "nothing")
    assert missing.returncode == 1 and "no summary.json" in missing.stderr


def test_mser_run_with_overrides_records_them_and_refuses_unknown_keys_before_training(tmp_path):
    from mser.cli import main

    out = tmp_path / "D"
    assert main(["run", "text-bilstm", "--data", SMALL, "--set", "units=16", "--epochs", "2", "--seeds", "1",
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["experiment"] == "text-bilstm[units=16]" and summary["overrides"] == {"units": 16}
    assert summary["config"]["hparams"]["units"] == 16
    assert summary["config"]["differs_from_defaults"] == ["units", "epochs"]
    assert summary["provenance"]["command"].startswith("mser run text-bilstm --data synthetic-small --set units=16")
    assert keras.models.load_model(out / "seed_0" / "model.keras").get_layer("bilstm1").forward_layer.units == 16

    refused = mser("run", "text-bilstm", "--data", SMALL, "--set", "no_such_key=1", "--out", tmp_path / "E")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "unknown override key 'no_such_key'; valid keys: units, dropout, hidden, train.epochs" in refused.stderr
    assert "seed 0" not in refused.stderr and not (tmp_path / "E").exists()  # refused before any training


def test_an_interrupted_run_resumes_with_the_missing_seeds_only(tmp_path, capsys):
    """Kill a 2-seed `mser run` once seed 0 is written; the same command then trains seed 1 only, and its summary
    equals an uninterrupted run's."""
    args = ["run", "text-bilstm", "--data", SMALL, "--seeds", "2", "--epochs", "2", "--workers", "1"]  # in turn
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "mser.cli", *args, "--out", str(killed)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "seed_0").is_dir():
            assert proc.poll() is None and time.monotonic() < deadline, "seed 0 was never written"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not (killed / "seed_1").exists() and not (killed / "summary.json").exists()

    from mser.cli import main

    assert main([*args, "--out", str(killed)]) == 0  # the same command again
    log = capsys.readouterr().err
    assert "reusing the complete seed(s) [0]" in log
    assert "seed 1 (1/1)" in log and "seed 0 (" not in log
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    got, want = (json.loads((d / "summary.json").read_text()) for d in (killed, tmp_path / "whole"))
    assert _comparable(got) == _comparable(want)


def test_a_folder_without_complete_seeds_is_taken_over_and_bad_outputs_are_refused(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="pooling must be 'linear' or 'log'"):  # fails before claiming the folder
        run_experiment("late-fusion-decision", SMALL, seeds=[0], epochs=1, out=out, overrides=["pooling=max"])
    assert not out.exists()
    run_experiment("text-bilstm", SMALL, seeds=[0], epochs=1, out=out, verbose=0)
    (out / "summary.json").unlink()
    shutil.rmtree(out / "seed_0")  # a run that died before its first seed: config.json and nothing else
    run_experiment("cnn-text", SMALL, seeds=[0], epochs=1, out=out, verbose=0)  # no --force needed
    assert json.loads((out / "summary.json").read_text())["experiment"] == "cnn-text"
    (out / "summary.json").unlink()
    with pytest.raises(FileNotFoundError, match="the run is incomplete.*rerun the same command to resume"):
        read_run(out)
    with pytest.raises(OutputExistsError, match="is not a directory"):
        run_experiment("cnn-text", SMALL, seeds=[0], epochs=1, out=out / "config.json", verbose=0)
    with pytest.raises(ValueError, match=r"seeds must be in 0 … 2\*\*32 - 1"):
        run_experiment("cnn-text", SMALL, seeds=[-1], epochs=1, out=out, verbose=0)


def test_a_changed_architecture_does_not_resume_an_old_run(tmp_path):
    def first(x: ModelInputs, num_classes, *, width: int = 4):
        h = keras.layers.Dense(width, activation="relu")(x.features["text"])
        return keras.layers.Dense(num_classes, activation="softmax")(h)

    def edited(x: ModelInputs, num_classes, *, width: int = 4):
        h = keras.layers.Dense(width + 1, activation="relu")(x.features["text"])  # the notebook cell, edited
        return keras.layers.Dense(num_classes, activation="softmax")(h)

    register_architecture("test_changing", modalities=("text",))(first)
    mine = Experiment("changing", "test_changing", ("text",))
    run_experiment(mine, SMALL, seeds=[0], epochs=1, out=tmp_path / "r", verbose=0)
    register_architecture("test_changing", modalities=("text",))(edited)
    with pytest.raises(OutputExistsError, match="architecture_code"):
        run_experiment(mine, SMALL, seeds=[0], epochs=1, out=tmp_path / "r", verbose=0)


def test_more_seeds_extend_a_run_a_seed_list_runs_exactly_those_and_force_replaces(two_runs, tmp_path):
    out = tmp_path / "a"
    shutil.copytree(two_runs[0] / "a", out)
    extended = run_experiment("text-bilstm", SMALL, seeds=range(3), epochs=2, out=out, verbose=0)
    assert [s.seed for s in extended.seeds] == [0, 1, 2]
    assert extended.seeds[0].metrics == two_runs[1].seeds[0].metrics  # reused, not retrained
    listed = run_experiment("text-bilstm", SMALL, seeds=[7], epochs=2, out=out, verbose=0)
    assert [s.seed for s in listed.seeds] == [7]  # exactly these seeds; the others stay on disk, outside it
    assert json.loads((out / "summary.json").read_text())["seeds"] == [7]
    assert sorted(p.name for p in out.glob("seed_*")) == ["seed_0", "seed_1", "seed_2", "seed_7"]

    replaced = run_experiment("text-bilstm", SMALL, seeds=[0], epochs=3, out=out, verbose=0, overwrite=True)
    assert [s.seed for s in replaced.seeds] == [0]
    assert sorted(p.name for p in out.iterdir()) == sorted(["config.json", "seed_0", *RUN_FILES])  # old seeds gone


# ------------------------------------------------------------------------------------------------ your own model

def test_a_model_defined_here_registers_and_runs_in_worker_processes_with_the_same_numbers():
    @register_architecture("test_tiny_gru", modalities=("text",))
    def tiny_gru(x: ModelInputs, num_classes, *, units: int = 8):
        h = keras.layers.Bidirectional(keras.layers.GRU(units, return_sequences=True), name="gru")(
            x.features["text"], mask=x.mask)
        h = keras.layers.Dense(units, activation="relu", name="hidden")(h)
        from model_utils.layers import ApplyMask

        h = ApplyMask(name="drop_keras_mask")(h, x.mask)
        return keras.layers.Dense(num_classes, activation="softmax", name="classifier")(h)

    mine = Experiment("tiny-gru", "test_tiny_gru", ("text",), hparams={"units": 6})
    serial = run_many([mine, "cnn-text"], SMALL, seeds=[0, 1], epochs=2, verbose=0, progress=False)
    parallel = run_many([mine, "cnn-text"], SMALL, seeds=[0, 1], workers=2, epochs=2, verbose=0, progress=False)
    assert list(parallel) == ["tiny-gru", "cnn-text"]
    for name in parallel:
        for a, b in zip(serial[name].seeds, parallel[name].seeds):
            assert a.metrics == b.metrics
            np.testing.assert_array_equal(a.predictions, b.predictions)


def test_build_model_refuses_an_output_that_carries_a_keras_mask_or_has_the_wrong_shape():
    from model_utils.architectures import build_model

    @register_architecture("test_masked_output", modalities=("text",))
    def masked_output(x: ModelInputs, num_classes):
        h = keras.layers.LSTM(4, return_sequences=True)(x.features["text"], mask=x.mask)
        return keras.layers.Dense(num_classes, activation="softmax")(h)  # Dense passes the LSTM's mask on

    with pytest.raises(ValueError, match="output carries a Keras mask.*ApplyMask"):
        build_model("test_masked_output", dims={"text": 5}, modalities=("text",), num_classes=3, max_len=None)
    with pytest.raises(ValueError, match="is built in"):
        register_architecture("rnn")(masked_output)

    @register_architecture("test_wrong_classes", modalities=("text",))
    def wrong_classes(x: ModelInputs, num_classes):
        return keras.layers.Dense(num_classes + 1, activation="softmax")(x.features["text"])

    with pytest.raises(ValueError, match=r"test_wrong_classes: .*shape \(batch, dialogue length, num_classes=3\)"):
        build_model("test_wrong_classes", dims={"text": 5}, modalities=("text",), num_classes=3, max_len=None)


# ------------------------------------------------------------------------------------------------ cross-validation

@pytest.fixture(scope="module")
def cv_runs(tmp_path_factory):
    """`mser run text-bilstm --data synthetic --cv sessions --seeds 1 --epochs 2`, and cnn-text to compare with."""
    from mser.cli import main

    out = tmp_path_factory.mktemp("cv")
    assert main(["run", "text-bilstm", "--data", "synthetic", "--cv", "sessions", "--seeds", "1", "--epochs", "2",
                 "--quiet", "--out", str(out / "a")]) == 0
    b = run_experiment("cnn-text", "synthetic", seeds=[0], epochs=1, cv="sessions", out=out / "b", verbose=0)
    return out, read_run(out / "a"), b


def test_leave_one_session_out_scores_every_utterance_once(cv_runs):
    out, a, _ = cv_runs
    assert a.cross_validated and len(a.seeds[0].folds) == 5
    ds = load_dataset("synthetic")
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert [f["session"] for f in summary["folds"]] == ["Ses01", "Ses02", "Ses03", "Ses04", "Ses05"]
    assert summary["utterances_scored"] == int(ds.mask.sum())  # every utterance of the corpus, once
    assert np.asarray(summary["confusion_matrix"]).sum() == int(ds.mask.sum())
    assert summary["evaluation"]["kind"] == "cv-sessions"
    held_out = {f["session"]: f["test_dialogues"] for f in summary["evaluation"]["folds"]}
    assert sum(held_out.values()) == len(ds)
    session = dict(zip(ds.dialogue_ids, ds.sessions))
    for fold in summary["evaluation"]["folds"]:  # validation never comes from the held-out session
        assert fold["validation_dialogues"] and all(session[d] != fold["session"]
                                                    for d in fold["validation_dialogues"])
    assert sorted(p.name for p in (out / "a" / "seed_0").glob("fold_*.keras")) == \
        [f"fold_Ses0{i}.keras" for i in range(1, 6)]
    pooled = summary["metrics"]["macro_f1"]["mean"]
    per_fold = [f["metrics"]["macro_f1"]["mean"] for f in summary["folds"]]
    assert min(per_fold) <= pooled <= max(per_fold) + 0.05  # pooled, not averaged, but of the same scale


def test_compare_works_on_two_cross_validated_runs(cv_runs, two_runs):
    out, a, b = cv_runs
    c = compare_runs(out / "a", out / "b", n_boot=100)
    assert c["n_dialogues"] == 151 and c["diff"] == pytest.approx(b.mean() - a.mean(), abs=1e-9)
    with pytest.raises(ValueError, match="same test set"):
        compare_runs(out / "a", two_runs[0] / "a")



# ------------------------------------------------------------------------------------------------ mser bench

def test_bench_reports_the_median_epoch_of_the_training_split():
    from model_utils.run.bench import bench

    result = bench("text-bilstm", SMALL, epochs=3)
    train, _, _ = prepare_data(get_experiment("text-bilstm"), SMALL)
    assert result["data"] == SYNTHETIC_NAME
    assert result["train_utterances"] == int(train.present.sum()) and result["train_dialogues"] == len(train)
    assert len(result["epoch_seconds"]) == 3 and all(t > 0 for t in result["epoch_seconds"])
    assert result["seconds_per_epoch"] == pytest.approx(np.median(result["epoch_seconds"]), abs=1e-3)
    assert result["utterances_per_second"] == pytest.approx(
        result["train_utterances"] / result["seconds_per_epoch"], rel=1e-2)
    assert result["peak_rss_mb"] > 0 and result["parameters"] > 0
    assert result["tensorflow_threads"] == {"intra_op": 1, "inter_op": 1}  # what every run trains with


@pytest.mark.parametrize("argv, cpus, expected", [
    (["run", "text-bilstm", "--seeds", "5"], 2, 2),  # one process per core
    (["run", "text-bilstm", "--seeds", "1"], 2, 1),  # one seed: in this process, no start-up cost
    (["run", "text-bilstm", "--seed-list", "3,4,5"], 8, 3),  # never more than one per seed
    (["run", "text-bilstm", "--seeds", "5", "--workers", "1"], 2, 1),  # the user's choice stands
    (["select", "text-bilstm", "cnn-text", "--data", SMALL, "--seeds", "1"], 4, 2),  # candidates × seeds
])
def test_cli_trains_on_every_core_unless_told(argv, cpus, expected, monkeypatch, tmp_path):
    """Every process trains with one TensorFlow thread, so a default of one worker would leave cores idle."""
    from mser.cli import main
    from model_utils import runner
    from model_utils.run import selection

    class Seen(Exception):
        pass

    def record(*args, workers, **kwargs):
        raise Seen(workers)

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(runner, "run_experiment", record)
    monkeypatch.setattr(selection, "select", record)
    data = [] if argv[0] == "select" else ["--data", SMALL]
    with pytest.raises(Seen) as seen:
        main([*argv, *data, "--out", str(tmp_path / "out")])
    assert seen.value.args == (expected,)


def test_bench_compare_alternates_and_keeps_the_median_run(monkeypatch):
    from model_utils.run import bench

    speeds = {"a": iter([10.0, 30.0, 20.0]), "b": iter([45.0, 40.0, 90.0])}
    calls = []

    def fake(name, data, *, scheme, epochs):
        calls.append(name)
        return {"experiment": name, "utterances_per_second": next(speeds[name]), "epochs": epochs}

    monkeypatch.setattr(bench, "bench_in_subprocess", fake)
    result = bench.compare(["a", "b"], repeats=3, epochs=2)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # alternating, so a busy spell hits both alike
    a, b = result["runs"]
    assert (a["utterances_per_second"], b["utterances_per_second"]) == (20.0, 45.0)
    assert a["repeats_utterances_per_second"] == [10.0, 30.0, 20.0]
    assert result["speedup_b_over_a"] == 2.25
    with pytest.raises(ValueError, match="repeats and epochs must be >= 1"):
        bench.compare(["a"], repeats=0)


def test_cli_bench_refuses_an_unknown_experiment_before_measuring():
    proc = mser("bench", "multimodal", "multimodl")
    assert proc.returncode != 0 and "unknown experiment 'multimodl'" in proc.stderr
    assert not proc.stdout


def test_a_run_in_this_process_gives_the_numbers_of_a_worker_process_bit_for_bit():
    """On IEMOCAP-sized data one epoch of cnn-text already differs in the last digits between one and two TensorFlow
    threads; ``import model_utils`` pins one, as the workers have."""
    here = run_many(["cnn-text"], "synthetic", seeds=[0], epochs=1, verbose=0, progress=False)["cnn-text"].seeds[0]
    pooled = run_many(["cnn-text"], "synthetic", seeds=[0], epochs=1, workers=2, verbose=0,
                      progress=False)["cnn-text"].seeds[0]
    np.testing.assert_array_equal(here.probabilities, pooled.probabilities)
    assert here.provenance["tensorflow_threads"] == pooled.provenance["tensorflow_threads"] == \
        {"intra_op": 1, "inter_op": 1}


# ------------------------------------------------------------------------------------------------ the metric a run is judged by

def test_a_config_resolves_auto_settings_for_the_runs_metric():
    auto = TrainConfig()
    assert (auto.class_weight, auto.monitor) == ("auto", "auto")
    assert auto.resolved() == TrainConfig(class_weight="balanced", monitor="macro_f1")  # the protocol's defaults
    for metric, weight in (("macro_f1", "balanced"), ("uar", "balanced"), ("weighted_f1", "none"),
                           ("accuracy", "none")):
        assert auto.resolved(metric) == TrainConfig(class_weight=weight, monitor=metric)
    explicit = TrainConfig(class_weight="balanced", monitor="loss")
    assert explicit.resolved("weighted_f1") == explicit  # what is set explicitly wins
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        auto.resolved("f2")


def test_a_weighted_f1_run_selects_on_it_and_trains_an_unweighted_loss(tmp_path):
    out = tmp_path / "w"
    proc = subprocess.run([sys.executable, "-m", "mser.cli", "run", "text-bilstm", "--data", SMALL, "--metric",
                           "weighted_f1", "--epochs", "3", "--seeds", "1", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metric"] == "weighted_f1"
    config = json.loads((out / "config.json").read_text())
    assert config["metric"] == "weighted_f1"
    assert (config["train_config"]["monitor"], config["train_config"]["class_weight"]) == ("weighted_f1", "none")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metric"] == "weighted_f1"
    assert "**Weighted-F1** (what the run is judged by)" in (out / "MODEL_CARD.md").read_text()
    from model_utils.run.plan import run_dir_name

    assert run_dir_name(get_experiment("text-bilstm"), None, "weighted_f1") == "text-bilstm--metric-weighted_f1"
    assert run_dir_name(get_experiment("text-bilstm"), None, "macro_f1") == "text-bilstm"


def test_macro_f1_as_the_metric_is_the_protocol_of_before_bit_for_bit(two_runs, tmp_path):
    """two_runs[1] was trained without a metric; the same with --metric macro_f1 resumes it (same configuration)
    and a fresh run gives the same numbers."""
    out, a, _ = two_runs
    again = run_experiment("text-bilstm", SMALL, seeds=[0, 1], epochs=2, out=tmp_path / "m", verbose=0,
                           metric="macro_f1")
    assert again.summary()["metrics"] == a.summary()["metrics"]
    assert np.array_equal(again.seeds[0].probabilities, a.seeds[0].probabilities)
    config = json.loads((out / "a" / "config.json").read_text())["train_config"]
    assert (config["class_weight"], config["monitor"]) == ("balanced", "macro_f1")  # recorded resolved


def test_a_corpus_may_declare_the_metric_it_is_judged_by(small_corpus, tmp_path):
    import dataclasses

    from data_utils.corpus import read_corpus, write_corpus

    path = tmp_path / "declared.pkl"
    write_corpus(dataclasses.replace(small_corpus, metric="weighted_f1"), path)
    assert read_corpus(path).metric == "weighted_f1"
    run = run_experiment("text-bilstm", str(path), seeds=[0], epochs=1, verbose=0)
    assert run.metric == "weighted_f1" and run.config["train_config"]["class_weight"] == "none"
    write_corpus(dataclasses.replace(small_corpus, metric="f2"), tmp_path / "bad.pkl")
    with pytest.raises(ValueError, match=r"bad\.pkl: field extras\.metric: unknown metric 'f2'"):
        run_experiment("text-bilstm", str(tmp_path / "bad.pkl"), seeds=[0], epochs=1, verbose=0)


def test_select_tries_training_settings_by_cross_validation(tmp_path):
    from model_utils.run import selection

    cands = selection.candidates([SMALL], ["text-bilstm"], (), {"train.class_weight": ["balanced", "none"]})
    assert [c.overrides for c in cands] == [("train.class_weight=balanced",), ("train.class_weight=none",)]
    assert selection.parse_try("kernel_sizes=(8,3),(12,8,4)") == ("kernel_sizes", ["(8,3)", "(12,8,4)"])
    with pytest.raises(ValueError, match="at least two values"):
        selection.parse_try("train.class_weight=none")
    table = selection.select(cands, out=tmp_path / "sel", seeds=[0], metric="weighted_f1", epochs=1, verbose=0)
    assert list(table["overrides"]) == ["train.class_weight=balanced", "train.class_weight=none"]
    assert table["selected"].sum() == 1
    assert table.loc[table["selected"], "cv_weighted_f1"].iloc[0] == table["cv_weighted_f1"].max()
    runs = sorted(p.name for p in (tmp_path / "sel" / "synthetic-small" / "cv").iterdir())
    assert runs == ["text-bilstm--train.class_weight=balanced--metric-weighted_f1--cv-train-sessions",
                    "text-bilstm--train.class_weight=none--metric-weighted_f1--cv-train-sessions"]
