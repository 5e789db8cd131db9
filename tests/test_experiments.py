"""Named experiments, the multi-seed runner and the `mser run | table | compare | list` commands."""
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from data_utils.dataset import load_dataset
from data_utils.fileio import OutputExistsError
from model_utils.architectures import ARCHITECTURES, default_hparams, required_inputs
from model_utils.experiments import EXPERIMENTS, get_experiment
from model_utils.metrics import METRICS
from model_utils.reporting import compare_runs, results_table, summaries, to_markdown
from model_utils.runner import prepare_data, run_experiment

REPO = Path(__file__).resolve().parents[1]
SMALL = "synthetic-small"


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_is_well_formed(name):
    e = EXPERIMENTS[name]
    assert e.arch in ARCHITECTURES
    required_inputs(e.arch, e.modalities)  # raises on a modality set the architecture does not take
    assert set(e.hparams) <= set(default_hparams(e.arch)), "unknown hyperparameters"
    assert e.group in {"timnet", "exploratory", "fusion", "final", "ablation"}


def test_unknown_experiment_names_its_neighbours():
    with pytest.raises(KeyError, match="unknown experiment 'rnn-txt'.*rnn-text"):
        get_experiment("rnn-txt")


def test_prepare_data_holds_out_validation_dialogues():
    ds = load_dataset(SMALL)
    train, valid, test = prepare_data(get_experiment("multimodal"), ds)
    ids = [set(x.dialogue_ids) for x in (train, valid, test)]
    assert ids[0] and ids[1] and ids[2]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert ids[0] | ids[1] == set(ds.splits["train"]) and ids[2] == set(ds.splits["test"])
    assert train.standardized  # multimodal standardises, on training dialogues
    assert not prepare_data(get_experiment("text-bilstm"), ds)[0].standardized


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


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    a = run_experiment("text-bilstm", SMALL, seeds=[0, 1], epochs=2, out=out / "a", verbose=0)
    b = run_experiment("early-fusion", SMALL, seeds=[0, 1], epochs=2, out=out / "b", verbose=0)
    return out, a, b


def test_run_directory_has_the_documented_summary(two_runs):
    out, a, _ = two_runs
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert summary["experiment"] == "text-bilstm"
    assert summary["dataset"] == {"path": SMALL, "synthetic": True, "label_scheme": "merged4"}
    assert summary["seeds"] == [0, 1]
    for m in METRICS:
        entry = summary["metrics"][m]
        assert set(entry) == {"mean", "std", "per_seed"} and len(entry["per_seed"]) == 2
        assert entry["mean"] == pytest.approx(np.mean(entry["per_seed"]))
        assert entry["std"] == pytest.approx(np.std(entry["per_seed"], ddof=1))
    assert len(summary["train_seconds"]["per_seed"]) == 2
    cm = np.array(summary["confusion_matrix"])
    assert cm.shape == (4, 4) and cm.sum() == 2 * a.test.mask.sum()  # real utterances only, both seeds
    for seed in (0, 1):
        folder = out / "a" / f"seed_{seed}"
        assert (folder / "confusion_matrix.csv").read_text().startswith("true\\pred,happy,angry,sad,neutral")
        model = keras.models.load_model(folder / "model.keras")
        assert model.name == "text_bilstm"
        with np.load(folder / "predictions.npz") as f:
            assert np.all(f["y_pred"][~f["mask"]] == -1)


def test_the_same_seed_gives_identical_metrics(two_runs):
    _, a, _ = two_runs
    again = run_experiment("text-bilstm", SMALL, seeds=[1], epochs=2, verbose=0)
    assert again.seeds[0].metrics == a.seeds[1].metrics
    np.testing.assert_array_equal(again.seeds[0].predictions, a.seeds[1].predictions)


def test_a_run_directory_is_never_silently_overwritten(two_runs):
    out, _, _ = two_runs
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        run_experiment("text-bilstm", SMALL, seeds=[0], epochs=1, out=out / "a", verbose=0)


def test_table_and_compare(two_runs):
    out, a, b = two_runs
    table = results_table(summaries([out / "a", out / "b"]))
    assert list(table["experiment"]) == ["text-bilstm", "early-fusion"]
    assert table.loc[0, "macro_f1"] == pytest.approx(a.mean("macro_f1"))
    md = to_markdown(table)
    assert "SYNTHETIC data (not IEMOCAP)" in md and "| text-bilstm | 2 |" in md
    c = compare_runs(out / "a", out / "b", n_boot=200)
    assert c["a"] == "text-bilstm" and c["b"] == "early-fusion" and c["n_boot"] == 200
    assert c["diff"] == pytest.approx(b.mean("macro_f1") - a.mean("macro_f1"), abs=1e-9)


def test_cli_list_table_and_compare(two_runs, tmp_path):
    out, _, _ = two_runs

    def mser(*args):
        return subprocess.run([sys.executable, "-m", "mser.cli", *map(str, args)], capture_output=True, text=True,
                              cwd=REPO)

    listed = mser("list").stdout
    assert all(name in listed for name in EXPERIMENTS)
    table = mser("table", out / "a", out / "b", "--csv", tmp_path / "t.csv")
    assert table.returncode == 0 and "SYNTHETIC" in table.stdout and (tmp_path / "t.csv").is_file()
    compare = mser("compare", out / "a", out / "b", "--n-boot", 100)
    assert compare.returncode == 0 and "paired bootstrap over test dialogues" in compare.stdout
    missing = mser("table", tmp_path / "nothing")
    assert missing.returncode == 1 and "no summary.json" in missing.stderr


def test_parallel_workers_give_the_same_numbers_as_one_process():
    from model_utils.runner import run_many

    names = ["text-bilstm", "cnn-text"]
    serial = run_many(names, SMALL, seeds=[0], epochs=2, verbose=0)
    parallel = run_many(names, SMALL, seeds=[0], epochs=2, verbose=0, workers=2)
    assert list(parallel) == names
    for n in names:
        assert parallel[n].seeds[0].metrics == serial[n].seeds[0].metrics
        np.testing.assert_array_equal(parallel[n].seeds[0].predictions, serial[n].seeds[0].predictions)


# ------------------------------------------------------------------------------------------------ mser bench

def test_bench_reports_the_median_epoch_of_the_training_split():
    from model_utils.bench import bench

    result = bench("text-bilstm", SMALL, epochs=3)
    train, _, _ = prepare_data(get_experiment("text-bilstm"), SMALL)
    assert result["data"] == "SYNTHETIC (not IEMOCAP)"
    assert result["train_utterances"] == int(train.present.sum()) and result["train_dialogues"] == len(train)
    assert len(result["epoch_seconds"]) == 3 and all(t > 0 for t in result["epoch_seconds"])
    assert result["seconds_per_epoch"] == pytest.approx(np.median(result["epoch_seconds"]), abs=1e-3)
    assert result["utterances_per_second"] == pytest.approx(
        result["train_utterances"] / result["seconds_per_epoch"], rel=1e-2)
    assert result["peak_rss_mb"] > 0 and result["parameters"] > 0


def test_bench_compare_alternates_and_keeps_the_median_run(monkeypatch):
    from model_utils import bench

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
    proc = subprocess.run([sys.executable, "-m", "mser.cli", "bench", "multimodal", "multimodl"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0 and "unknown experiment 'multimodl'" in proc.stderr
    assert not proc.stdout
