"""The real IEMOCAP transcripts (``../shared/data/iemocap_transcripts.csv``) through the project's own text pipeline:
TF-IDF features -> corpus pickle -> ``load_dataset`` -> ``run_experiment``. Skipped when the shared file is absent.

Cheap by design: one seed, at most two epochs. The numbers are not checked against any target here (that is
the job of the 5-seed runs in the report); only that the pipeline runs end to end on the real data, keeps the
transcripts' own validation split, and scores exactly the 1623 test utterances.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from data_utils.corpus import write_corpus
from data_utils.dataset import load_dataset
from data_utils.text_features import build_text_corpus
from model_utils.experiments import EXPERIMENTS, get_experiment
from model_utils.metrics import METRICS
from model_utils.results import SUMMARY
from model_utils.runner import prepare_data, run_experiment

TEST_UTTERANCES = 1623  # the 31 Session-5 dialogues
SPLIT_DIALOGUES = {"train": 108, "valid": 12, "test": 31}
TEXT_ONLY = sorted(name for name, e in EXPERIMENTS.items() if e.modalities == ("text",))


pytestmark = pytest.mark.shared


@functools.lru_cache(maxsize=None)
def _build_tfidf(csv: Path, folder: Path) -> Path:
    """The TF-IDF corpus pickle of ``csv``, built once per test session (about 3 s)."""
    path = folder / "iemocap_tfidf.pkl"
    write_corpus(build_text_corpus(csv, encoder="tfidf"), path)
    return path


@functools.lru_cache(maxsize=None)
def _load(path: Path):
    return load_dataset(str(path))


@pytest.fixture
def tfidf_pkl(transcripts_csv, tmp_path_factory) -> Path:  # transcripts_csv skips with a reason when absent
    return _build_tfidf(transcripts_csv, tmp_path_factory.getbasetemp())


@pytest.fixture
def text_ds(tfidf_pkl):
    return _load(tfidf_pkl)


def test_tfidf_features_load_as_a_text_only_dataset_with_the_transcripts_splits(text_ds):
    assert text_ds.modalities == ("text",)
    assert text_ds.dims == {"text": 100}
    assert text_ds.scheme.name == "merged4"
    assert {s: len(ids) for s, ids in text_ds.splits.items()} == SPLIT_DIALOGUES
    assert text_ds.class_counts("test") == {"happy": 443, "angry": 551, "sad": 245, "neutral": 384}
    assert not text_ds.synthetic


def test_prepare_data_keeps_the_transcripts_validation_split(text_ds):
    train, valid, test = prepare_data(get_experiment("text-bilstm"), text_ds)
    assert set(valid.dialogue_ids) == set(text_ds.splits["valid"])  # not re-drawn from train
    assert set(train.dialogue_ids) == set(text_ds.splits["train"])
    assert int(test.mask.sum()) == TEST_UTTERANCES


@pytest.mark.parametrize("name, epochs", [("text-bilstm", 2), ("text-context", 1)])
def test_text_experiment_trains_and_scores_every_test_utterance(tfidf_pkl, tmp_path, name, epochs):
    out = tmp_path / "run"
    result = run_experiment(name, str(tfidf_pkl), seeds=(0,), epochs=epochs, out=out, verbose=0)
    summary = json.loads((out / SUMMARY).read_text())
    assert summary["utterances_scored"] == TEST_UTTERANCES
    assert summary["dataset"]["synthetic"] is False and summary["dataset"]["label_scheme"] == "merged4"
    assert summary["class_names"] == ["happy", "angry", "sad", "neutral"]
    assert np.asarray(summary["confusion_matrix"]).sum() == TEST_UTTERANCES
    for m in METRICS:
        assert 0.0 <= summary["metrics"][m]["mean"] <= 1.0
        assert 0.0 <= summary["validation"][m]["mean"] <= 1.0
    (seed,) = result.seeds
    assert 1 <= seed.best_epoch <= seed.epochs_run <= epochs
    assert ((seed.predictions >= 0) == result.test.mask).all()  # a prediction for every scored utterance only


@pytest.mark.parametrize("name", ["rnn-audio", "multimodal"])
def test_an_experiment_needing_audio_refuses_text_only_features(text_ds, name):
    with pytest.raises(ValueError, match=f"experiment {name!r} needs audio") as err:
        prepare_data(get_experiment(name), text_ds)
    message = str(err.value)
    assert f"experiment {name!r} needs audio" in message
    assert "(it has text)" in message
    assert str(text_ds.source) in message


def test_mser_run_refuses_with_the_message_and_no_traceback(tfidf_pkl, tmp_path, capsys):
    from mser.cli import main

    code = main(["run", "multimodal", "--data", str(tfidf_pkl), "--seeds", "1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 1
    assert "'multimodal' needs audio, visual features" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", TEXT_ONLY)
def test_text_only_experiments_accept_text_only_features(text_ds, name):
    train, valid, test = prepare_data(get_experiment(name), text_ds)
    assert train.modalities == valid.modalities == test.modalities == ("text",)
