"""The pickle reader: safety, the Python 2 fixture, every validation error, label schemes and order."""
import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_utils.corpus import DataFormatError, corpus_from_bytes, corpus_to_tuple, read_corpus, write_corpus
from data_utils.dataset import from_corpus, load_dataset
from data_utils.fileio import OutputExistsError
from data_utils.safe_pickle import UnsafePickleError

REPO = Path(__file__).resolve().parents[1]
FIXTURE_COUNTS = {"Ses01F_impro01": 26, "Ses01F_impro02": 30, "Ses01F_impro03": 44, "Ses01F_impro04": 61,
                  "Ses01F_impro05": 59, "Ses01F_impro06": 44, "Ses04F_script02_1": 50, "Ses05F_impro01": 44,
                  "Ses05F_impro02": 49, "Ses05F_impro03": 83}


# ------------------------------------------------------------------------------------------------- fixture

def test_python2_fixture_loads_with_exact_counts(fixture_pkl):
    corpus = read_corpus(fixture_pkl)
    assert {d: len(v) for d, v in corpus.dialogues.items()} == FIXTURE_COUNTS
    assert corpus.splits["train"] == tuple(sorted(FIXTURE_COUNTS)[:7])
    assert corpus.splits["test"] == ("Ses05F_impro01", "Ses05F_impro02", "Ses05F_impro03")
    assert corpus.splits["valid"] == ()
    assert not corpus.synthetic

    ds = from_corpus(corpus)
    summary = ds.summary()
    assert summary["splits"]["train"]["dialogues"] == 7 and summary["splits"]["train"]["utterances"] == 314
    assert summary["splits"]["test"]["dialogues"] == 3 and summary["splits"]["test"]["utterances"] == 176
    assert summary["modalities"] == {"text": 100, "audio": 100, "visual": 512}
    assert ds.max_len == 83 and ds.features["visual"].dtype == np.float32  # float64 in the file
    assert ds.utterance_ids[0][0] == "Ses01F_impro01_F000" and ds.speaker_names == ("F", "M")


def test_label_schemes_on_the_fixture(fixture_pkl):
    corpus = read_corpus(fixture_pkl)
    raw = [lab for d in corpus.dialogues.values() for lab in d.labels]
    merged, standard, six = (from_corpus(corpus, s) for s in ("merged4", "standard4", "original6"))
    assert merged.class_counts()["angry"] == raw.count("ang") + raw.count("fru")
    assert merged.class_counts()["happy"] == raw.count("hap") + raw.count("exc")
    assert sum(merged.class_counts().values()) == len(raw) == 490
    # standard4 leaves fru out of the scores but keeps the utterances in the dialogue as context
    assert standard.class_counts()["angry"] == raw.count("ang")
    assert int(standard.mask.sum()) == len(raw) - raw.count("fru")
    assert int(standard.present.sum()) == len(raw)
    assert np.all(standard.labels[~standard.mask] == -1)
    assert six.class_counts() == {n: raw.count(n) for n in six.class_names}
    # no pad class: labels at padding are -1 and the class count is the scheme's
    assert merged.num_classes == 4 and np.all(merged.labels[~merged.present] == -1)


def test_cli_summary_of_the_fixture(fixture_pkl):
    out = subprocess.run([sys.executable, "-m", "mser.cli", "data", "summary", "--data", str(fixture_pkl)],
                         capture_output=True, text=True, cwd=REPO, check=True)
    summary = json.loads(out.stdout)
    assert summary["synthetic"] is False
    assert summary["splits"]["train"]["dialogues"] == 7 and summary["splits"]["train"]["utterances"] == 314
    assert summary["splits"]["test"]["dialogues"] == 3 and summary["splits"]["test"]["utterances"] == 176
    assert summary["modalities"] == {"text": 100, "audio": 100, "visual": 512}


def test_order_does_not_depend_on_the_hash_seed(fixture_pkl):
    script = ("import sys, hashlib; from data_utils.dataset import load_dataset; "
              "ds = load_dataset(sys.argv[1]); "
              "print(ds.dialogue_ids, ds.splits['train'], hashlib.sha1(ds.features['text'].tobytes()).hexdigest())")
    outputs = set()
    for hash_seed in ("1", "2", "random"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        outputs.add(subprocess.run([sys.executable, "-c", script, str(fixture_pkl)], env=env, cwd=REPO,
                                   capture_output=True, text=True, check=True).stdout)
    assert len(outputs) == 1


# ------------------------------------------------------------------------------------------------- safety

class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, small_corpus):
    target = tmp_path / "pwned"
    layout = list(corpus_to_tuple(small_corpus))
    layout[7] = [_Payload(target)]
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(tuple(layout), protocol=2))
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*refused to load global posix\.system"):
        read_corpus(path)
    assert not target.exists()
    # the same bytes through plain pickle really would have run the payload: the test is meaningful
    pickle.loads(path.read_bytes())
    assert target.exists()


def test_truncated_and_non_pickle_files_get_a_clear_error(tmp_path, small_corpus):
    good = pickle.dumps(corpus_to_tuple(small_corpus), protocol=2)
    for name, data in (("truncated.pkl", good[: len(good) // 2]), ("text.pkl", b"hello, world\n")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataFormatError, match=rf"{name}: not a readable pickle"):
            read_corpus(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="no such data file"):
        read_corpus(tmp_path / "absent.pkl")


# ------------------------------------------------------------------------------------------------- validation

def _mutated(small_corpus, mutate):
    layout = copy.deepcopy(list(corpus_to_tuple(small_corpus)))  # rows are views: never mutate the fixture
    mutate(layout)
    return pickle.dumps(tuple(layout), protocol=2)


FIRST = "synth_train_000"
CASES = [
    ("tuple length", lambda t: (t.pop(), t.pop()), r"expected Poria et al.'s 9-tuple .*found a tuple of 8 elements"),
    ("not a dict", lambda t: t.__setitem__(2, [1, 2]), r"field videoLabels: must be a dict"),
    ("missing dialogue", lambda t: t[3].pop(FIRST), rf"dialogue '{FIRST}': field videoText: has no entry"),
    ("extra dialogue", lambda t: t[1].__setitem__("ghost", ["F"]), r"dialogue 'ghost': field videoSpeakers"),
    ("speaker count", lambda t: t[1].__setitem__(FIRST, t[1][FIRST][:-1]),
     rf"dialogue '{FIRST}': field videoSpeakers: has \d+ entries but videoIDs lists \d+"),
    ("label count", lambda t: t[2].__setitem__(FIRST, t[2][FIRST] + [0]), rf"'{FIRST}': field videoLabels: has"),
    ("audio count", lambda t: t[4].__setitem__(FIRST, t[4][FIRST][:-1]), rf"'{FIRST}': field videoAudio: has"),
    ("feature width", lambda t: t[5].__setitem__(FIRST, [r[:-1] for r in t[5][FIRST]]),
     r"field videoVisual: feature width 511 differs from width 512"),
    ("ragged rows", lambda t: t[3][FIRST].__setitem__(1, t[3][FIRST][1][:5]),
     rf"'{FIRST}': field videoText: .*\(utterance 1 \({FIRST}_\w+\) has 5 values, utterance 0 has 100\)$"),
    ("text as a row", lambda t: t[3][FIRST].__setitem__(2, "abc"),
     rf"'{FIRST}': field videoText: .*\(utterance 2 \({FIRST}_\w+\) is a str, not a vector of numbers\)$"),
    ("missing row", lambda t: t[4][FIRST].__setitem__(0, None),
     rf"'{FIRST}': field videoAudio: .*\(utterance 0 \({FIRST}_\w+\) is a single NoneType, not a vector\)$"),
    ("not finite", lambda t: t[4][FIRST][2].__setitem__(7, np.nan),
     rf"'{FIRST}': field videoAudio: utterance 2 \({FIRST}_\w+\): non-finite value nan at dimension 7"),
    ("label range", lambda t: t[2].__setitem__(FIRST, [9] + t[2][FIRST][1:]),
     rf"'{FIRST}': field videoLabels: utterance 0: label id 9 is out of range 0..5"),
    ("label type", lambda t: t[2].__setitem__(FIRST, ["hap"] + t[2][FIRST][1:]), r"label must be an integer id"),
    ("overlap", lambda t: t.__setitem__(8, t[8] + [FIRST]), rf"dialogue '{FIRST}': field testVid: is in both"),
    ("unknown split id", lambda t: t.__setitem__(8, t[8] + ["ghost"]), r"dialogue 'ghost': field testVid: is not"),
    ("unassigned", lambda t: t.__setitem__(7, t[7][1:]), rf"dialogue '{FIRST}'.*in neither trainVid nor testVid"),
    ("empty dialogue", lambda t: [t[i].__setitem__(FIRST, []) for i in (0, 1, 2, 3, 4, 5, 6)],
     rf"dialogue '{FIRST}': field videoIDs: the dialogue has no utterances"),
    ("bad speaker", lambda t: t[1].__setitem__(FIRST, [None] + t[1][FIRST][1:]), r"speaker must be a non-empty"),
    ("no modality", lambda t: [t.__setitem__(i, {}) for i in (3, 4, 5)], r"no modality has features"),
    ("valid not in train", lambda t: t[9].__setitem__("validVid", ["synth_test_000"]),
     r"'synth_test_000': field extras.validVid: validation dialogues must be part of trainVid"),
]


@pytest.mark.parametrize("name,mutate,message", CASES, ids=[c[0] for c in CASES])
def test_every_validation_error_names_file_dialogue_and_field(small_corpus, name, mutate, message):
    data = _mutated(small_corpus, mutate)
    with pytest.raises(DataFormatError, match=r"^bad\.pkl: .*" + message):
        corpus_from_bytes(data, source="bad.pkl")


def test_poria_layout_round_trips_and_absent_modalities_stay_absent(tmp_path, small_corpus):
    path = write_corpus(small_corpus, tmp_path / "c.pkl")
    back = read_corpus(path)
    assert back.synthetic and back.modalities == ("text", "audio", "visual")
    d = small_corpus.dialogues[FIRST]
    np.testing.assert_array_equal(back.dialogues[FIRST].features["visual"], d.features["visual"])
    assert back.dialogues[FIRST].labels == d.labels
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        write_corpus(small_corpus, path)

    layout = list(corpus_to_tuple(small_corpus))
    layout[4], layout[5] = {}, {}
    text_only = corpus_from_bytes(pickle.dumps(tuple(layout)), source="t.pkl")
    assert text_only.modalities == ("text",)
    with pytest.raises(ValueError, match="has no audio features"):
        from_corpus(text_only).model_inputs(["text", "audio"])


def test_a_file_that_carries_its_validation_split_keeps_it(small_corpus):
    layout = list(corpus_to_tuple(small_corpus))
    layout[9]["validVid"] = [FIRST]
    corpus = corpus_from_bytes(pickle.dumps(tuple(layout)), source="v.pkl")
    assert corpus.splits["valid"] == (FIRST,) and FIRST not in corpus.splits["train"]


def test_unknown_scheme_and_uncovered_labels(small_corpus):
    with pytest.raises(ValueError, match="unknown label scheme 'bogus'"):
        load_dataset("synthetic", scheme="bogus")
    layout = list(corpus_to_tuple(small_corpus))
    layout[9]["label_names"] = ["joy", "anger", "calm", "sad", "x", "y"]
    corpus = corpus_from_bytes(pickle.dumps(tuple(layout)), source="own.pkl")
    with pytest.raises(ValueError, match=r"not covered by label scheme 'merged4'.*--scheme native"):
        from_corpus(corpus, "merged4")
    assert from_corpus(corpus, "native").class_names == ("joy", "anger", "calm", "sad", "x", "y")
    assert from_corpus(corpus).class_names == ("joy", "anger", "calm", "sad", "x", "y")  # 'auto' follows the file


# ------------------------------------------------------------------------------------------------- other corpora

def _poria9(small_corpus, labels=None) -> list:
    """The small corpus as a bare Poria 9-tuple (no extras), optionally with other label ids."""
    layout = copy.deepcopy(list(corpus_to_tuple(small_corpus)))[:9]
    if labels is not None:
        layout[2] = {d: [labels(i) for i, _ in enumerate(v)] for d, v in layout[2].items()}
    return layout


def test_a_9_tuple_with_more_label_ids_than_iemocap_says_how_to_name_them(small_corpus, tmp_path):
    data = pickle.dumps(tuple(_poria9(small_corpus, labels=lambda i: i % 7)), protocol=2)
    with pytest.raises(DataFormatError, match=r"label id 6 is out of range 0\.\.5 \(hap, .*\); if the file uses "
                                              r"another label set, name its labels.*--label-names"):
        corpus_from_bytes(data, source="meld7.pkl")
    names = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
    corpus = corpus_from_bytes(data, source="meld7.pkl", label_names=names)
    assert corpus.label_names == names and corpus.dialogues[FIRST].labels[:7] == names


def test_a_9_tuple_of_another_corpus_with_iemocap_sized_ids_warns_that_names_are_guessed(small_corpus):
    from data_utils.corpus import DataWarning

    layout = _poria9(small_corpus)  # synthetic ids (synth_train_000), not IEMOCAP's SesNN...
    with pytest.warns(DataWarning, match=r"does not name its labels and its dialogue ids are not IEMOCAP's.*"
                                         r"--label-names"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="other.pkl")


def test_iemocap_ids_without_label_names_load_quietly(fixture_pkl):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_corpus(fixture_pkl)


def test_a_10th_element_of_another_tool_is_recognised_and_not_read(small_corpus):
    from data_utils.corpus import DataWarning

    for trailing in (["some", "other", "list"], {d: [0] for d in small_corpus.dialogues}):
        layout = _poria9(small_corpus) + [trailing]
        with pytest.warns(DataWarning, match=r"the 10th element \(a (list|dict)\) is not this suite's extras"):
            corpus = corpus_from_bytes(pickle.dumps(tuple(layout)), source="plus.pkl")
        assert corpus.splits["test"] == small_corpus.splits["test"]


def test_dialoguernn_meld_layout_loads_with_meld_labels_and_one_hot_speakers(small_corpus):
    from data_utils.corpus import MELD7

    p = _poria9(small_corpus, labels=lambda i: i % 7)
    ids, speakers, labels, text, audio, _, sentences, train, test = p
    one_hot = {d: [[0.0] * 9 for _ in v] for d, v in speakers.items()}
    for d, rows in one_hot.items():
        for i, row in enumerate(rows):
            row[(i * 4) % 3] = 1.0  # parties 0, 1, 2
    sentiment = {d: [0] * len(v) for d, v in ids.items()}
    meld = (ids, one_hot, labels, text, audio, sentences, train, test, sentiment)
    corpus = corpus_from_bytes(pickle.dumps(meld, protocol=2), source="MELD_features_raw.pkl")
    assert corpus.modalities == ("text", "audio") and corpus.label_names == MELD7
    d = corpus.dialogues[FIRST]
    assert d.labels[:3] == ("neutral", "surprise", "fear") and d.speakers[:3] == ("P0", "P1", "P2")
    bad = dict(one_hot, **{FIRST: [[1.0, 1.0] + [0.0] * 7] + one_hot[FIRST][1:]})
    with pytest.raises(DataFormatError, match=rf"'{FIRST}': field videoSpeakers: utterance 0: speaker must be a "
                                              r"name or a one-hot vector"):
        corpus_from_bytes(pickle.dumps((ids, bad, labels, text, audio, sentences, train, test, sentiment)),
                          source="m.pkl")


def test_an_unknown_layout_says_what_was_expected_what_was_found_and_what_to_do(small_corpus):
    p = _poria9(small_corpus)
    cosmic_like = tuple(p[:3] + [p[3], p[3], p[3], p[3], p[6], p[7], p[8], []])  # 11 fields, 4 feature dicts
    with pytest.raises(DataFormatError, match=r"x\.pkl: expected Poria et al.'s 9-tuple .*DialogueRNN's MELD 9-tuple"
                                              r".*found a tuple of 11 elements \(dict, dict, .*list\)\. Convert the file"):
        corpus_from_bytes(pickle.dumps(cosmic_like), source="x.pkl")


def test_values_beyond_float32_are_refused_after_the_cast(small_corpus):
    layout = _poria9(small_corpus)
    layout[4][FIRST][3] = np.asarray(layout[4][FIRST][3], dtype=np.float64)
    layout[4][FIRST][3][5] = 1e39  # finite in float64, inf in float32
    with pytest.raises(DataFormatError, match=rf"'{FIRST}': field videoAudio: utterance 3 .*value 1e\+39 at "
                                              r"dimension 5 is beyond float32's range"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="big.pkl")


def test_protocol_5_pickles_of_numpy_arrays_load(small_corpus, tmp_path):
    import pandas as pd

    reference = corpus_from_bytes(pickle.dumps(corpus_to_tuple(small_corpus), protocol=2), source="p2.pkl")
    for writer in ("pickle", "pandas"):
        path = tmp_path / f"{writer}.pkl"
        if writer == "pickle":
            path.write_bytes(pickle.dumps(corpus_to_tuple(small_corpus), protocol=pickle.HIGHEST_PROTOCOL))
        else:
            pd.to_pickle(corpus_to_tuple(small_corpus), path)
        assert path.read_bytes()[:2] == b"\x80\x05"
        corpus = read_corpus(path)
        np.testing.assert_array_equal(corpus.dialogues[FIRST].features["visual"],
                                      reference.dialogues[FIRST].features["visual"])


def test_a_protocol_5_pickle_that_runs_code_is_still_refused(tmp_path, small_corpus):
    target = tmp_path / "pwned"
    layout = list(corpus_to_tuple(small_corpus))
    layout[7] = [_Payload(target)]
    with pytest.raises(UnsafePickleError, match=r"refused to load global posix\.system"):
        corpus_from_bytes(pickle.dumps(tuple(layout), protocol=5), source="evil5.pkl")
    assert not target.exists()


def test_bytes_sentences_are_utf8_text_not_their_repr(small_corpus):
    layout = _poria9(small_corpus)
    layout[6][FIRST] = [s.encode("utf-8") for s in layout[6][FIRST]]
    layout[6][FIRST][0] = "Café, naïve".encode("utf-8")
    corpus = corpus_from_bytes(pickle.dumps(tuple(layout)), source="b.pkl")
    assert corpus.dialogues[FIRST].sentences[0] == "Café, naïve"
    layout[6][FIRST][1] = b"\xff\xfe"
    with pytest.raises(DataFormatError, match=rf"'{FIRST}': field videoSentence: utterance 1: the sentence is bytes "
                                              r"that are not UTF-8"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="b.pkl")


@pytest.mark.parametrize("field,index", [("trainVid", 7), ("testVid", 8)])
def test_an_empty_split_list_is_refused_on_load(small_corpus, field, index):
    layout = _poria9(small_corpus)
    layout[index] = []
    with pytest.raises(DataFormatError, match=rf"e\.pkl: field {field}: lists no dialogues"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="e.pkl")


def test_a_directory_as_data_is_called_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"is a directory, not a data file"):
        read_corpus(tmp_path)


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "mser.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_mser_data_convert_names_the_labels_once_for_every_command(small_corpus, tmp_path):
    from data_utils.corpus import MELD7

    source = tmp_path / "seven.pkl"
    source.write_bytes(pickle.dumps(tuple(_poria9(small_corpus, labels=lambda i: i % 7))))
    refused = _cli("data", "summary", "--data", source)
    assert refused.returncode == 1 and "--label-names" in refused.stderr and "Traceback" not in refused.stderr
    out = tmp_path / "named.pkl"
    done = _cli("data", "convert", source, "--out", out, "--label-names", ",".join(MELD7))
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr  # the names were given: nothing is guessed
    summary = json.loads(_cli("data", "summary", "--data", out, "--scheme", "native").stdout)
    assert tuple(summary["classes"]) == MELD7
    again = _cli("data", "convert", source, "--out", out, "--label-names", ",".join(MELD7))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    bad = _cli("data", "convert", source, "--out", tmp_path / "x.pkl", "--label-names", "a,,b")
    assert bad.returncode == 2 and "distinct, non-empty names" in bad.stderr


def test_data_summary_shows_the_validation_split_every_experiment_holds_out(small_corpus):
    from model_utils.runner import prepare_data

    ds = from_corpus(small_corpus)
    held = ds.summary()["validation_held_out"]
    _, valid, _ = prepare_data("text-bilstm", ds)
    assert held["ids"] == list(valid.dialogue_ids) and held["dialogues"] == len(valid) > 0
    assert ds.summary()["splits"]["train"]["held_out_for_validation"] == len(valid)  # train counts them: say so
    assert held["utterances"] == int(valid.present.sum()) and held["rule"].startswith("drawn from the training")
    layout = list(corpus_to_tuple(small_corpus))
    layout[9]["validVid"] = [FIRST]
    own = from_corpus(corpus_from_bytes(pickle.dumps(tuple(layout)), source="v.pkl")).summary()
    assert own["validation_held_out"]["ids"] == [FIRST] and own["validation_held_out"]["rule"] == \
        "the file's own validation list"


def test_class_warnings_before_training(small_corpus, tmp_path):
    from data_utils.dataset import class_warnings

    assert class_warnings(from_corpus(small_corpus)) == []
    layout = _poria9(small_corpus)
    test_ids = set(layout[8])
    # sad (id 1) only in the test dialogues; hap (id 0) nowhere in the test dialogues
    layout[2] = {d: [(2 if lab == 1 else lab) if d not in test_ids else (1 if lab == 0 else lab) for lab in v]
                 for d, v in layout[2].items()}
    layout.append({"label_names": list(("hap", "sad", "neu", "ang", "exc", "fru")), "validVid": []})
    path = tmp_path / "skewed.pkl"
    path.write_bytes(pickle.dumps(tuple(layout)))
    messages = class_warnings(load_dataset(str(path), scheme="original6"))
    assert any("'sad' have no training utterances" in m for m in messages)
    assert any("'hap' have no test utterances" in m and "capped at 5/6 = 0.833" in m for m in messages)
    one_class = copy.deepcopy(layout)
    one_class[2] = {d: [2] * len(v) for d, v in one_class[2].items()}
    path1 = tmp_path / "one.pkl"
    path1.write_bytes(pickle.dumps(tuple(one_class)))
    assert any("one class only ('neu')" in m for m in class_warnings(load_dataset(str(path1), scheme="original6")))
    cased = copy.deepcopy(layout)
    cased[9]["label_names"] = ["hap", "Hap", "neu", "ang", "exc", "fru"]
    path2 = tmp_path / "cased.pkl"
    path2.write_bytes(pickle.dumps(tuple(cased)))
    assert any("'hap' and 'Hap' differ only by case" in m
               for m in class_warnings(load_dataset(str(path2), scheme="native")))
    cli = _cli("data", "summary", "--data", path, "--scheme", "original6")
    assert cli.returncode == 0 and cli.stderr.count("warning: ") == 2, cli.stderr


# ------------------------------------------------------------------------------------------------- a new user's finds

def test_dialoguernn_meld_with_integer_dialogue_ids_loads(small_corpus):
    p = _poria9(small_corpus, labels=lambda i: i % 7)
    ids, speakers, labels, text, audio, _, sentences, train, test = p
    number = {d: i for i, d in enumerate(sorted(ids))}
    renum = lambda dct: {number[d]: v for d, v in dct.items()}  # noqa: E731
    one_hot = {d: [[1.0, 0.0] if i % 2 == 0 else [0.0, 1.0] for i, _ in enumerate(v)] for d, v in speakers.items()}
    meld = (renum(ids), renum(one_hot), renum(labels), renum(text), renum(audio), renum(sentences),
            [number[d] for d in train], [number[d] for d in test], renum({d: [0] * len(v) for d, v in ids.items()}))
    corpus = corpus_from_bytes(pickle.dumps(meld), source="MELD_features_raw.pkl")
    assert str(number[FIRST]) in corpus.dialogues and corpus.splits["test"] == tuple(
        sorted(str(number[d]) for d in test))


def test_complex_features_are_refused_not_silently_made_real(small_corpus):
    layout = _poria9(small_corpus)
    layout[3][FIRST] = [np.asarray(v, dtype=complex) for v in layout[3][FIRST]]
    with pytest.raises(DataFormatError, match=rf"'{FIRST}': field videoText: utterance features must be real numbers"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="c.pkl")


def test_a_validation_list_of_every_training_dialogue_is_refused(small_corpus):
    layout = _poria9(small_corpus) + [{"validVid": list(_poria9(small_corpus)[7])}]
    with pytest.raises(DataFormatError, match=r"field extras.validVid: lists all \d+ training dialogues, which leaves "
                                              r"none to train on"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="v.pkl")


def test_duplicate_utterance_ids_are_refused(small_corpus):
    layout = _poria9(small_corpus)
    other = sorted(layout[0])[1]
    layout[0][other] = [layout[0][FIRST][0]] + layout[0][other][1:]
    with pytest.raises(DataFormatError, match=r"field videoIDs: utterance id .* is not unique"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="u.pkl")


def test_label_names_that_are_not_a_list_are_refused(small_corpus):
    layout = _poria9(small_corpus) + [{"label_names": "abcdef"}]
    with pytest.raises(DataFormatError, match=r"field extras.label_names: must be a list of label names"):
        corpus_from_bytes(pickle.dumps(tuple(layout)), source="l.pkl")
