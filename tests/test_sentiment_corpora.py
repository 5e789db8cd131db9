"""Poria et al.'s CMU-MOSI and CMU-MOSEI modality pickles (data_utils.corpus_sentiment), read from fixtures in
exactly their layouts (tests/sentiment_fixtures.py), and the label scheme 'auto' that follows the file."""
from __future__ import annotations

import json
import pickle
import warnings
from collections import Counter

import numpy as np
import pytest

from data_utils.corpus import DataFormatError, DataWarning, corpus_to_tuple, read_corpus, write_corpus
from data_utils.dataset import from_corpus, load_dataset
from data_utils.identity import data_sha256, describe_source
from data_utils.labels import auto_scheme
from data_utils.safe_pickle import safe_loads
from mser.cli import main
from sentiment_fixtures import MOSEI_SPLITS, MOSI_SPLITS, PADDED, WIDTHS, mosei_tuple, mosi_tuple, py2_pickle, \
    write_mosei, write_mosi


def _expected_mosi(modality="audio", seed=0):
    """Per split: the utterance counts and label names the fixture wrote (0 = negative, 1 = positive)."""
    t = mosi_tuple(modality, seed=seed)
    out = {}
    for split, labels, lengths in (("train", t[1], t[5]), ("test", t[3], t[6])):
        out[split] = (lengths, Counter("positive" if v else "negative"
                                       for i, n in enumerate(lengths) for v in labels[i, :n]))
    return out


def test_the_fixtures_are_python2_pickles_that_python3_reads_only_with_latin1(tmp_path):
    path, = write_mosi(tmp_path, ["audio"])
    data = path.read_bytes()
    assert b"numpy.core.multiarray\n_reconstruct" in data and data[:2] == b"\x80\x02"
    with pytest.raises(UnicodeDecodeError):  # array bytes as a Python 2 str: ASCII cannot decode them
        pickle.loads(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 on numpy.core
        reference = pickle.loads(data, encoding="latin1")
    ours = safe_loads(data, source=str(path))
    assert len(reference) == len(ours) == 7
    for a, b in zip(reference, ours):
        assert (np.array_equal(a, b) and a.dtype == b.dtype) if isinstance(a, np.ndarray) else a == b
    assert reference[1].dtype == np.float64 and reference[0].shape == (MOSI_SPLITS["train"], PADDED, 73)


def test_a_mosi_audio_file_loads_its_videos_utterances_classes_and_width(tmp_path):
    path, = write_mosi(tmp_path, ["audio"])
    corpus = read_corpus(path)
    expected = _expected_mosi()
    assert corpus.corpus == "CMU-MOSI" and corpus.modalities == ("audio",)
    assert corpus.label_names == ("negative", "positive") and not corpus.sessions
    for split in ("train", "test"):
        lengths, counts = expected[split]
        ids = [f"mosi_{split}_{i:03d}" for i in range(len(lengths))]
        assert list(corpus.splits[split]) == ids
        assert [len(corpus.dialogues[d]) for d in ids] == lengths
        assert Counter(lab for d in ids for lab in corpus.dialogues[d].labels) == counts
    assert corpus.splits["valid"] == ()
    video = corpus.dialogues["mosi_train_001"]
    assert video.utterance_ids[0] == "mosi_train_001_u00" and set(video.speakers) == {"mosi_train_001"}
    assert set(video.sentences) == {""}
    raw = mosi_tuple("audio")[0]
    np.testing.assert_array_equal(video.features["audio"], raw[1, :len(video)])
    ds = from_corpus(corpus)
    assert ds.dims == {"audio": WIDTHS["audio"]} and ds.scheme.name == "native"
    assert ds.class_names == ("negative", "positive") and ds.num_parties == 1
    assert not (ds.labels[~ds.present] >= 0).any()  # padding is no class


def test_a_folder_of_three_modality_files_is_merged_by_position(tmp_path):
    write_mosi(tmp_path)
    corpus = read_corpus(tmp_path)
    assert corpus.modalities == ("text", "audio", "visual")
    ds = from_corpus(corpus)
    assert ds.dims == {"text": WIDTHS["text"], "audio": WIDTHS["audio"], "visual": WIDTHS["video"]}
    raw = mosi_tuple("video")[2]
    np.testing.assert_array_equal(corpus.dialogues["mosi_test_002"].features["visual"],
                                  raw[2, :len(corpus.dialogues["mosi_test_002"])])
    assert "text from text_2way.pickle, audio from audio_2way.pickle, visual from video_2way.pickle" in \
        corpus.description
    globbed = read_corpus(tmp_path / "*_2way.pickle")
    assert globbed.modalities == corpus.modalities and list(globbed.dialogues) == list(corpus.dialogues)
    two = read_corpus(tmp_path / "[ta]*.pickle")
    assert two.modalities == ("text", "audio")


def test_mismatched_lengths_between_two_modality_files_name_both_in_one_line(tmp_path):
    write_mosi(tmp_path, ["text"])
    rng_lengths = {"train": [PADDED] + [4] * (MOSI_SPLITS["train"] - 1), "test": [PADDED, 3, 3, 3]}
    (tmp_path / "audio_2way.pickle").write_bytes(py2_pickle(mosi_tuple("audio", lengths=rng_lengths)))
    with pytest.raises(DataFormatError) as e:
        read_corpus(tmp_path)
    message = str(e.value)
    assert "\n" not in message and "audio_2way.pickle" in message and "text_2way.pickle" in message
    assert "mosi_train_" in message and "train_length" in message


def test_labels_that_disagree_between_files_are_refused_naming_both(tmp_path):
    write_mosi(tmp_path, ["text"])
    t = list(mosi_tuple("audio"))
    t[3] = t[3].copy()
    t[3][1, 0] = 1 - t[3][1, 0]
    (tmp_path / "audio_2way.pickle").write_bytes(py2_pickle(tuple(t)))
    with pytest.raises(DataFormatError, match=r"audio_2way\.pickle: dialogue 'mosi_test_001': field test_label: utterance 0 is "
                       r"\w+, but \w+ in .*text_2way\.pickle$"):
        read_corpus(tmp_path)


def test_the_mosei_layout_keeps_its_own_validation_split(tmp_path):
    write_mosei(tmp_path, task=3)
    corpus = read_corpus(tmp_path)
    assert corpus.corpus == "CMU-MOSEI" and corpus.label_names == ("negative", "neutral", "positive")
    assert list(corpus.splits["valid"]) == [f"mosei_valid_{i:03d}" for i in range(MOSEI_SPLITS["valid"])]
    assert len(corpus.splits["train"]) == MOSEI_SPLITS["train"]
    ds = load_dataset(str(tmp_path))
    held = ds.validation_held_out()
    assert held["rule"] == "the file's own validation list" and held["ids"] == list(corpus.splits["valid"])
    splits = ds.summary()["splits"]  # the file's own validation videos are a split of their own, not held out of train
    assert splits["valid"]["dialogues"] == 3 and "held_out_for_validation" not in splits["train"]
    # upstream's one-hot columns are (negative, positive, neutral): the fixture's scores say which is which
    t = mosei_tuple("text", 3)
    first = corpus.dialogues["mosei_train_000"].labels
    assert [int(np.argmax(row)) for row in t[1][0, :len(first)]] == \
        [{"negative": 0, "positive": 1, "neutral": 2}[lab] for lab in first]
    assert set(first) == {"negative", "neutral", "positive"}


def test_mosei_2way_scores_follow_upstreams_rule(tmp_path):
    path, = write_mosei(tmp_path, ["audio"], task=2)
    corpus = read_corpus(path)
    scores = mosei_tuple("audio", 2)[5]  # test_label: sentiment scores
    video = corpus.dialogues["mosei_test_000"]
    assert list(video.labels) == ["positive" if s > 0 else "negative" for s in scores[0, :len(video)]]
    assert corpus.label_names == ("negative", "positive")


def test_a_mosei_file_whose_fields_2_3_8_are_no_validation_split_draws_one(tmp_path):
    t = list(mosei_tuple("audio", 3))
    t[2] = np.zeros((2, 3))
    (tmp_path / "audio_3way.pickle").write_bytes(py2_pickle(tuple(t)))
    with pytest.warns(DataWarning, match="drawn from the training videos"):
        corpus = read_corpus(tmp_path / "audio_3way.pickle")
    assert corpus.splits["valid"] == () and len(corpus.dialogues) == MOSEI_SPLITS["train"] + MOSEI_SPLITS["test"]


@pytest.mark.parametrize("change, expected", [
    (lambda t: t.__setitem__(5, [PADDED] * (MOSI_SPLITS["train"] - 1) + [PADDED + 1]),
     r"'mosi_train_007'.*train_length.*from 1 to 9"),
    (lambda t: t.__setitem__(6, [PADDED, 3]), r"field test_length: lists 2 videos but test_data holds 4"),
    (lambda t: t[1].__setitem__((2, 0), np.nan), r"'mosi_train_002'.*train_label.*not finite"),
    (lambda t: t[0].__setitem__((3, 0, 5), np.inf), r"'mosi_train_003'.*train_data.*non-finite"),
    (lambda t: t.__setitem__(3, np.zeros((4, PADDED, 2))), r"test_label: holds one-hot rows of 2, but train_label values"),
    (lambda t: [t.__setitem__(k, np.zeros(t[k].shape + (2,))) for k in (1, 3)], r"train_label.*not one-hot"),
    (lambda t: t.__setitem__(4, "63"), r"field maxlen: must be the padded length, an integer"),
    (lambda t: t.__setitem__(0, t[0][:, :, 0]), r"field train_data: must be a numeric \(videos, utterances, width\)"),
    (lambda t: t.__setitem__(0, t[0].astype(np.float64) * 1e300), r"'mosi_train_000'.*train_data.*beyond float32"),
    (lambda t: t.__setitem__(2, np.zeros((4, PADDED))), r"test_data.*numeric \(videos, utterances, width\)"),
])
def test_a_damaged_mosi_file_is_refused_naming_file_video_and_field(tmp_path, change, expected):
    t = list(mosi_tuple("audio"))
    change(t)
    path = tmp_path / "audio_2way.pickle"
    path.write_bytes(py2_pickle(tuple(t)))
    with pytest.raises(DataFormatError, match=expected) as e:
        read_corpus(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_what_a_folder_or_glob_may_hold(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file matches"):
        read_corpus(tmp_path / "*_2way.pickle")
    with pytest.raises(FileNotFoundError, match="is a directory, not a data file, and holds no per-modality"):
        read_corpus(tmp_path)
    write_mosi(tmp_path, ["text"])
    write_mosei(tmp_path, ["audio"], task=3)
    with pytest.raises(DataFormatError, match="is a CMU-MOSEI file, but .*text_2way.pickle is CMU-MOSI"):
        read_corpus(tmp_path / "*.pickle")
    odd = tmp_path / "odd"
    write_mosi(odd, ["audio"], names=["features.pkl"])
    with pytest.raises(DataFormatError, match="does not say which modality"):
        read_corpus(odd / "features.pkl")
    with pytest.raises(DataFormatError, match="name their own labels"):
        read_corpus(tmp_path / "text_2way.pickle", label_names=["a", "b"])


def test_a_folder_is_identified_by_its_files_contents(tmp_path):
    write_mosi(tmp_path)
    before = data_sha256(str(tmp_path))
    assert before != "unknown" and len(before) == 64
    assert describe_source(str(tmp_path), synthetic=False, dialogues=12, corpus="CMU-MOSI")["name"] == \
        f"CMU-MOSI ({tmp_path.name})"
    write_mosi(tmp_path, ["audio"], seed=1)
    assert data_sha256(str(tmp_path)) != before


def test_a_converted_mosi_corpus_keeps_its_name(tmp_path):
    corpus = read_corpus(write_mosi(tmp_path / "raw", ["audio"])[0])
    out = write_corpus(corpus, tmp_path / "mosi.pkl")
    again = read_corpus(out)
    assert again.corpus == "CMU-MOSI" and corpus_to_tuple(again)[9]["corpus"] == "CMU-MOSI"
    assert list(again.dialogues) == list(corpus.dialogues)


# ------------------------------------------------------------------------------------------ the scheme follows

def test_auto_is_merged4_for_iemocap_names_and_the_files_own_classes_otherwise():
    assert auto_scheme(("hap", "sad", "neu", "ang", "exc", "fru")) == "merged4"
    assert auto_scheme(("neu", "sad", "xxx")) == "merged4"
    assert auto_scheme(("negative", "positive")) == "native"
    assert auto_scheme(("neutral", "joy", "anger")) == "native"
    assert auto_scheme(("xxx",)) == "native"


def test_a_pickle_naming_other_labels_runs_without_scheme_and_says_so(small_corpus, tmp_path, capsys, monkeypatch):
    import dataclasses

    monkeypatch.setattr("data_utils.notes._said", set())

    renamed = {"hap": "joy", "sad": "sadness", "neu": "neutral", "ang": "anger", "exc": "joy2", "fru": "anger2"}
    dialogues = {k: dataclasses.replace(d, labels=tuple(renamed[x] for x in d.labels))
                 for k, d in small_corpus.dialogues.items()}
    corpus = dataclasses.replace(small_corpus, dialogues=dialogues, label_names=tuple(renamed.values()),
                                 synthetic=False, source="")
    path = write_corpus(corpus, tmp_path / "named.pkl")
    capsys.readouterr()
    ds = load_dataset(str(path))
    err = capsys.readouterr().err
    assert ds.scheme.name == "native" and set(ds.class_names) <= set(renamed.values())
    assert f"{path}: label scheme auto -> native" in err
    load_dataset(str(path))
    assert "label scheme" not in capsys.readouterr().err  # once per process


def test_an_iemocap_file_still_gets_merged4(fixture_pkl, capsys, monkeypatch):
    monkeypatch.setattr("data_utils.notes._said", set())
    ds = load_dataset(str(fixture_pkl))
    err = capsys.readouterr().err.splitlines()
    assert ds.scheme.name == "merged4" and ds.class_names == ("happy", "angry", "sad", "neutral")
    assert err == [f"note: {fixture_pkl}: read as Poria et al.'s IEMOCAP 9-tuple (also DialogueRNN's and "
                   "DialogueGCN's IEMOCAP files)",
                   f"note: {fixture_pkl}: label scheme auto -> merged4 (IEMOCAP's label names); --scheme chooses "
                   "another"]
    monkeypatch.setenv("MSER_NOTES", "0")
    monkeypatch.setattr("data_utils.notes._said", set())
    load_dataset(str(fixture_pkl))
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------------------- the command line

def test_data_summary_and_an_audio_only_run_need_no_scheme(tmp_path, capsys, monkeypatch):
    path, = write_mosi(tmp_path / "raw", ["audio"])
    assert main(["data", "summary", "--data", str(path)]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["corpus"] == "CMU-MOSI" and summary["label_scheme"] == "native"
    assert summary["classes"] == ["negative", "positive"] and summary["modalities"] == {"audio": 73}
    monkeypatch.chdir(tmp_path)
    assert main(["run", "rnn-audio", "--data", str(path), "--seeds", "1", "--epochs", "1", "--out", "run"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["label_scheme"] == "native" and config["data"]["name"] == "CMU-MOSI (audio_2way.pickle)"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["dataset"]["label_scheme"] == "native"
    assert main(["run", "text-bilstm", "--data", str(path), "--seeds", "1", "--out", "run2"]) == 1
    assert "text" in capsys.readouterr().err  # an experiment needing a modality the file lacks: refused


def test_the_readmes_own_example_works_for_labels_other_than_iemocaps(tmp_path, capsys, monkeypatch):
    """`mser features text --transcripts my.csv …` then `mser run text-bilstm --data …`, no --scheme anywhere."""
    import csv

    rng = np.random.default_rng(0)
    words = {"pos": "great lovely happy", "neg": "awful bad sad", "neu": "the a table"}
    rows = []
    for d in range(12):
        split = "test" if d >= 9 else "train"
        for turn in range(6):
            label = ["pos", "neg", "neu"][int(rng.integers(3))]
            rows.append([f"d{d}", turn, "AB"[turn % 2], label, split, f"{words[label]} {turn}"])
    path = tmp_path / "my.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["dialogue_id", "turn", "speaker", "label", "split", "text"], *rows])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("data_utils.notes._said", set())
    assert main(["features", "text", "--transcripts", str(path), "--out", "my_text.pkl", "--dim", "8"]) == 0
    assert main(["run", "text-bilstm", "--data", "my_text.pkl", "--seeds", "1", "--epochs", "1", "--out", "r"]) == 0
    assert "label scheme auto -> native (the file's own labels: neg, neu, pos)" in capsys.readouterr().err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["dataset"]["label_scheme"] == "native"


@pytest.mark.parametrize("name, values, expected", [
    ("audio_3way.pickle", [0, 1, 2], ["negative", "positive", "neutral"]),  # class ids, upstream's order
    ("audio_3way.pickle", [0, 1, 1], ["negative", "positive", "positive"]),  # ids of a 3-way file without neutral
    ("audio_3way.pickle", [-0.4, 0.0, 2.2], ["negative", "neutral", "positive"]),  # scores, 3-way rule
    ("audio_2way.pickle", [-0.4, 0.0, 2.2], ["negative", "negative", "positive"]),  # scores, 2-way rule
    ("audio.pickle", [0, 2, 1], ["negative", "neutral", "positive"]),  # no task in the name: ids up to 2 are 3-way
])
def test_class_ids_and_scores_are_read_by_upstreams_rules(tmp_path, name, values, expected):
    t = list(mosi_tuple("audio"))
    t[3] = t[3].copy()
    t[3][0, :3] = values
    (tmp_path / name).write_bytes(py2_pickle(tuple(t)))
    corpus = read_corpus(tmp_path / name)
    assert list(corpus.dialogues["mosi_test_000"].labels[:3]) == expected
    three_way = "3way" in name or 2 in values
    assert corpus.label_names == (("negative", "neutral", "positive") if three_way else ("negative", "positive"))


# ----------------------------------------------------------------------------- what a new user tried (helper-5)

def test_a_folder_as_upstream_ships_it_reads_its_2way_files_and_names_the_others(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("data_utils.notes._said", set())
    write_mosi(tmp_path)
    write_mosi(tmp_path, names=["text.pickle", "audio.pickle", "video.pickle"], seed=1)
    write_mosei(tmp_path, ["audio"], task=3)
    corpus = read_corpus(tmp_path)
    assert corpus.corpus == "CMU-MOSI" and corpus.modalities == ("text", "audio", "visual")
    assert "text from text_2way.pickle" in corpus.description
    err = capsys.readouterr().err
    assert "reading its 2-way (_2way) files; it also holds audio.pickle, text.pickle, video.pickle, " \
           "audio_3way.pickle" in err
    assert read_corpus(tmp_path / "*_3way.pickle").corpus == "CMU-MOSEI"


def test_one_reading_of_the_labels_for_every_split(tmp_path):
    t = list(mosei_tuple("audio", 2))  # sentiment scores in every split
    t[5] = np.where(t[5] != 0, 2.0, 0.0)  # test scores that look like class ids: still scores
    (tmp_path / "audio_3way.pickle").write_bytes(py2_pickle(tuple(t)))
    video = read_corpus(tmp_path / "audio_3way.pickle").dialogues["mosei_test_000"]
    assert set(video.labels) <= {"neutral", "positive"}  # 0 is neutral and 2 positive, as in train


def test_a_broken_link_in_a_folder_and_a_9_tuple_named_as_a_modality_are_refused(tmp_path, fixture_pkl):
    write_mosi(tmp_path, ["text", "audio"])
    (tmp_path / "video_2way.pickle").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="video_2way.pickle: no such data file"):
        read_corpus(tmp_path)
    only = tmp_path / "only"
    only.mkdir()
    (only / "audio.pkl").write_bytes(fixture_pkl.read_bytes())
    with pytest.raises(DataFormatError, match=r"audio\.pkl: is not a CMU-MOSI / MOSEI modality tuple"):
        read_corpus(only)


def test_a_run_on_the_current_folder_is_named_and_used_afterwards(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mosi"
    write_mosi(folder, ["audio"])
    monkeypatch.chdir(folder)
    assert main(["run", "rnn-audio", "--data", ".", "--seeds", "1", "--epochs", "1", "--out", str(tmp_path / "r")]) \
        == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["data"]["name"] == "CMU-MOSI (mosi)" and config["data"]["corpus"] == "CMU-MOSI"
    card = (tmp_path / "r" / "MODEL_CARD.md").read_text()
    assert "sentiment-analysis" in card and "the task is sentiment, not emotion" in card
    capsys.readouterr()
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "r"), "--data", ".", "--out", str(out)]) == 0, capsys.readouterr().err
    assert out.is_file()
    assert main(["predict", str(tmp_path / "r"), "--data", ".", "--out", "audio_2way.pickle", "--force"]) == 1
    assert "audio_2way.pickle" in capsys.readouterr().err  # the run's data is never an output
