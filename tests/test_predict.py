"""A trained model leaves its run folder: what a run records (inputs.json, standardization.npz, predictions.csv,
MODEL_CARD.md), ``load_run(...).predict`` and ``mser predict`` on pickles and transcripts, and Keras loading a
saved model after a plain ``import model_utils``."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_utils.corpus import read_corpus
from data_utils.dataset import load_dataset
from model_utils.rundir import INPUTS, MODEL_CARD, PREDICTIONS_CSV, RUN_FILES
from model_utils.runner import prepare_data, run_experiment
from model_utils.trained import load_run
from mser.cli import main

SMALL = "synthetic-small"


@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    """text-context (it reads the speaker's party), 2 seeds, 2 epochs, on synthetic-small."""
    out = tmp_path_factory.mktemp("runs") / "text-context"
    return out, run_experiment("text-context", SMALL, seeds=[0, 1], epochs=2, out=out, verbose=0)


def _seed_average(out: Path) -> np.ndarray:
    return np.mean([np.load(out / f"seed_{s}" / "predictions.npz")["probabilities"] for s in (0, 1)], axis=0)


def _one_error(err: str, *names: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(n in lines[0] for n in names), lines[0]
    return lines[0]


def test_a_run_records_how_to_build_its_inputs_and_a_model_card(context_run):
    out, run = context_run
    assert set(RUN_FILES) <= {p.name for p in out.iterdir()}
    inputs = json.loads((out / INPUTS).read_text())
    assert inputs["modalities"] == ["text"] and inputs["widths"] == {"text": 100}
    assert inputs["label_scheme"]["classes"] == list(run.class_names) and inputs["speaker"]["input"] == "party"
    train, _, _ = prepare_data("text-context", SMALL)
    raw_train = load_dataset(SMALL).subset(train.dialogue_ids)
    with np.load(out / "standardization.npz", allow_pickle=False) as stats:
        rows = raw_train.features["text"][raw_train.present].astype(np.float64)
        assert np.allclose(stats["test-split/text/mean"], rows.mean(0)) and np.allclose(stats["test-split/text/std"],
                                                                                        rows.std(0))
    card = (out / MODEL_CARD).read_text()
    assert card.startswith("---\n") and "SYNTHETIC data — not IEMOCAP results" in card
    assert "synthetic:synthetic-small" in card and "mser predict" in card
    ensemble = pd.read_csv(out / PREDICTIONS_CSV)
    seed0 = pd.read_csv(out / "seed_0" / PREDICTIONS_CSV)
    assert list(ensemble.columns) == ["dialogue_id", "utterance_id", "turn", "speaker", "label", "predicted",
                                      "p_happy", "p_angry", "p_sad", "p_neutral"]
    assert len(ensemble) == len(seed0) == int(run.mask.sum())
    probabilities = _seed_average(out)[run.mask]
    assert np.allclose(ensemble.filter(like="p_").to_numpy(), probabilities, atol=1e-7)
    assert (ensemble["predicted"] == np.array(run.class_names)[probabilities.argmax(-1)]).all()


def test_a_saved_model_loads_after_a_plain_import_and_takes_the_dataset_inputs_by_name(context_run):
    out, run = context_run
    code = ("import model_utils, keras, sys\n"
            f"m = keras.saving.load_model({str(out / 'seed_0' / 'model.keras')!r})\n"
            "print(sorted(t.name for t in m.inputs))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['party', 'present', 'text']"
    import keras

    from model_utils import training

    model = keras.saving.load_model(out / "seed_0" / "model.keras")
    _, _, test = prepare_data("text-context", SMALL)
    by_name = model.predict(test.model_inputs(["text"], speaker="party"), verbose=0)
    assert np.allclose(by_name * test.present[..., None], training.predict(model, test, ["text"]), atol=1e-6)


def test_predict_on_a_pickle_gives_the_seed_average_and_the_cli_writes_it(context_run, tmp_path, capsys):
    out, run = context_run
    table = load_run(out).predict(SMALL)
    test = table[table["dialogue_id"].isin(run.dialogue_ids)]
    expected = _seed_average(out)[run.mask]
    assert np.allclose(test.filter(like="p_").to_numpy(), expected, atol=1e-5)
    assert table.attrs["metrics"]["n"] == int(load_dataset(SMALL).mask.sum())  # every labelled utterance scored
    assert main(["predict", str(out), "--data", SMALL, "--out", str(tmp_path / "p.jsonl"), "--format", "json"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == len(table) and rows[0]["utterance_id"] == table["utterance_id"].iloc[0]
    err = capsys.readouterr().err
    assert "SYNTHETIC" in err and "scored" in err and "macro_f1" in err


def test_one_seed_and_a_run_without_inputs_and_a_width_mismatch(context_run, tmp_path, capsys):
    out, run = context_run
    one = load_run(out).predict(SMALL, seed=1)
    probabilities = np.load(out / "seed_1" / "predictions.npz")["probabilities"][run.mask]
    assert np.allclose(one[one["dialogue_id"].isin(run.dialogue_ids)].filter(like="p_").to_numpy(), probabilities,
                       atol=1e-5)
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "summary.json"):
        (old / name).write_bytes((out / name).read_bytes())
    (old / "seed_0").mkdir()
    for p in (out / "seed_0").iterdir():
        (old / "seed_0" / p.name).write_bytes(p.read_bytes())
    pred = tmp_path / "pred.csv"
    assert main(["predict", str(old), "--data", SMALL, "--out", str(pred)]) == 1
    _one_error(capsys.readouterr().err, str(old), "inputs.json", "rerun")
    assert not pred.exists()
    wide = tmp_path / "wide.pkl"
    assert main(["data", "synthetic", "--out", str(wide)]) == 0  # text 100-d too: make it 88-d
    from data_utils.corpus import write_corpus
    import dataclasses

    corpus = read_corpus(wide)
    narrow = {d: dataclasses.replace(v, features={m: f[:, :88] for m, f in v.features.items()})
              for d, v in corpus.dialogues.items()}
    write_corpus(dataclasses.replace(corpus, dialogues=narrow), wide, overwrite=True)
    capsys.readouterr()
    assert main(["predict", str(out), "--data", str(wide), "--out", str(pred)]) == 1
    _one_error(capsys.readouterr().err, "text is 88-wide here, the run was trained on 100")
    assert not pred.exists()


def test_labels_outside_the_runs_classes_are_warned_about_and_not_scored(context_run, tmp_path):
    out, _ = context_run
    import dataclasses

    from data_utils.dataset import load_corpus

    small = load_corpus(SMALL)
    first = next(iter(small.dialogues))
    relabelled = {d: dataclasses.replace(v, labels=("surprise",) * len(v)) if d == first else v
                  for d, v in small.dialogues.items()}
    corpus = dataclasses.replace(small, dialogues=relabelled, label_names=(*small.label_names, "surprise"))
    with pytest.warns(UserWarning, match=r"labels \['surprise'\] are not in the run's scheme"):
        table = load_run(out).predict(corpus)
    assert table.attrs["metrics"]["n"] == int(load_dataset(SMALL).mask.sum()) - len(small.dialogues[first])


@pytest.mark.shared
def test_real_transcripts_features_run_and_predict_agree_with_the_runs_own_posteriors(transcripts_csv, tmp_path,
                                                                                      capsys):
    """The acceptance of issue 22 on the real transcripts: mser features text, mser run text-context (2 seeds, one
    epoch to stay cheap), then mser predict on the 31 test dialogues without their label and split columns."""
    features, out = tmp_path / "text.pkl", tmp_path / "run"
    assert main(["features", "text", "--transcripts", str(transcripts_csv), "--out", str(features)]) == 0
    assert main(["run", "text-context", "--data", str(features), "--seeds", "2", "--epochs", "1", "--workers", "1",
                 "--out", str(out), "--quiet"]) == 0
    with open(transcripts_csv, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test"]
    new = tmp_path / "new.csv"
    with open(new, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in rows[0] if c not in ("label", "split")])
        writer.writeheader()
        writer.writerows({k: v for k, v in r.items() if k not in ("label", "split")} for r in rows[::-1])
    capsys.readouterr()
    assert main(["predict", str(out), "--transcripts", str(new), "--out", str(tmp_path / "pred.csv")]) == 0
    assert "scored" not in capsys.readouterr().err  # no labels, no metrics
    table = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert len(table) == len(rows) == 1623
    turns: dict[str, list[int]] = {}
    for r in rows:
        turns.setdefault(r["dialogue_id"], []).append(int(r["turn"]))
    position = {(d, t): i for d, ts in turns.items() for i, t in enumerate(sorted(ts))}
    in_input_order = [(r["dialogue_id"], position[r["dialogue_id"], int(r["turn"])]) for r in rows[::-1]]
    assert list(zip(table["dialogue_id"], table["turn"])) == in_input_order
    summary = json.loads((out / "summary.json").read_text())
    run = np.load(out / "seed_0" / "predictions.npz")
    ids, mask = list(run["dialogue_ids"]), run["mask"]
    average = _seed_average(out)
    row = {d: i for i, d in enumerate(ids)}
    got = table.filter(like="p_").to_numpy()
    want = np.array([average[row[d], t] for d, t in zip(table["dialogue_id"], table["turn"])])
    assert mask.sum() == summary["utterances_scored"] == 1623
    assert np.abs(got - want).max() < 1e-5


# ------------------------------------------------------------------------------------------- what a new user broke

@pytest.fixture(scope="module")
def text_features_run(tmp_path_factory):
    """text-bilstm (1 seed, 1 epoch) on TF-IDF features of synthetic-small's transcripts, with their extractor."""
    from data_utils.dataset import load_corpus
    from data_utils.text_features import write_text_features
    from data_utils.transcripts import write_transcripts

    root = tmp_path_factory.mktemp("text")
    transcripts = write_transcripts(load_corpus(SMALL), root / "t.csv")
    write_text_features(transcripts, root / "feats" / "text.pkl", synthetic=True)
    out = root / "runs" / "tb"
    run_experiment("text-bilstm", str(root / "feats" / "text.pkl"), seeds=[0], epochs=1, out=out, verbose=0)
    return root, out


def test_no_output_lands_on_a_runs_extractor_or_data_or_inside_a_run(text_features_run, tmp_path, capsys):
    root, out = text_features_run
    conversation = tmp_path / "c.csv"
    conversation.write_text("dialogue_id,turn,text\nd1,0,hello there\nd1,1,how are you\n")
    extractor = next((root / "feats").glob("*.text-extractor.json"))
    before = extractor.read_bytes()
    for target, what in ((extractor, "input"), (root / "feats" / "text.pkl", "input"),
                         (out / "seed_0" / "x.csv", "inside the run directory"),
                         (out / "new.csv", "inside the run directory")):
        assert main(["predict", str(out), "--transcripts", str(conversation), "--out", str(target), "--force"]) == 1
        _one_error(capsys.readouterr().err, what)
    assert extractor.read_bytes() == before and not (out / "new.csv").exists()
    assert main(["robustness", str(out), "--conditions", "no-text", "--out", str(root / "feats" / "text.pkl"),
                 "--force"]) == 1
    _one_error(capsys.readouterr().err, "input")
    same = tmp_path / "same.png"
    assert main(["robustness", str(out), "--out", str(same), "--figure", str(same)]) == 1
    _one_error(capsys.readouterr().err, "--figure and --out are the same file")  # before any work
    assert not same.exists()


def test_transcripts_as_a_dataframe_keep_their_text_and_name_themselves_in_errors(text_features_run):
    _, out = text_features_run
    frame = pd.DataFrame({"dialogue_id": ["d1", "d1", "d2"], "turn": [0.0, 1.0, 0.0],  # floats, as after a NaN
                          "text": ["=1+2 happy", "-great day!", "fine"]})
    table = load_run(out).predict(transcripts=frame)
    assert list(table["text"]) == ["=1+2 happy", "-great day!", "fine"]  # nothing prefixed in memory
    from data_utils.corpus import DataFormatError

    with pytest.raises(DataFormatError, match=r"^<DataFrame>: line 3"):
        load_run(out).predict(transcripts=frame.assign(text=["a", "", "b"]))


def test_a_moved_run_finds_its_extractor_beside_it_or_where_it_is_told(text_features_run, tmp_path):
    import shutil

    root, out = text_features_run
    moved = tmp_path / "moved"
    shutil.copytree(root / "feats", moved / "feats")
    shutil.copytree(out, moved / "runs" / "tb")
    frame = pd.DataFrame({"dialogue_id": ["d1"], "turn": [0], "text": ["hello"]})
    here = load_run(moved / "runs" / "tb")
    here.inputs.extractors["text"]["path"] = str(tmp_path / "gone.json")  # as if the original folder were gone
    assert len(here.predict(transcripts=frame)) == 1  # found beside the run, by its relative path
    (moved / "feats").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match="--extractor"):
        here.predict(transcripts=frame)
    given = next((tmp_path / "elsewhere").glob("*.text-extractor.json"))
    assert len(here.predict(transcripts=frame, extractor=given)) == 1


def test_features_of_another_extractor_and_the_runs_own_dialogues_are_warned_about(text_features_run):
    root, out = text_features_run
    with pytest.warns(UserWarning, match="trained or selected its epochs on"):
        load_run(out).predict(root / "feats" / "text.pkl")
    with pytest.warns(UserWarning, match="made by no saved extractor than the run's"):
        load_run(out).predict(SMALL)  # synthetic features of the same width, made by no extractor
