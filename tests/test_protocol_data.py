"""Validation split, standardisation and the synthetic generator."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_utils.corpus import read_corpus
from data_utils.dataset import Standardizer, load_dataset, standardize, with_validation_split
from data_utils.fileio import OutputExistsError
from data_utils.synthetic import generate_corpus, synthetic_corpus, write_synthetic

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def test_validation_split_is_deterministic_and_disjoint(synthetic):
    a, b = with_validation_split(synthetic, seed=7), with_validation_split(synthetic, seed=7)
    assert a.splits == b.splits
    train, valid, test = (set(a.splits[s]) for s in ("train", "valid", "test"))
    assert not (train & valid) and not (valid & test) and not (train & test)
    assert train | valid == set(synthetic.splits["train"])  # carved from training dialogues only
    assert len(valid) == 12  # 10 % of 120
    assert with_validation_split(synthetic, seed=8).splits["valid"] != a.splits["valid"]
    assert with_validation_split(a, seed=99).splits == a.splits  # an existing validation list is kept


def test_validation_split_needs_two_training_dialogues(synthetic):
    one = synthetic.subset([synthetic.splits["train"][0], *synthetic.splits["test"]])
    with pytest.raises(ValueError, match="need at least 2 training dialogues"):
        with_validation_split(one)


def test_standardizer_uses_training_utterances_only(synthetic):
    ds = with_validation_split(synthetic)
    scaled = standardize(ds)
    train = scaled.subset("train")
    rows = train.features["audio"][train.present]
    np.testing.assert_allclose(rows.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(rows.std(axis=0), 1, atol=1e-3)
    assert np.all(scaled.features["audio"][~scaled.present] == 0)  # padding stays zero
    # changing test features does not change the fitted statistics
    test_rows = np.isin(np.array(ds.dialogue_ids), ds.splits["test"])
    poisoned = ds.features["audio"].copy()
    poisoned[test_rows] += 100.0
    import dataclasses
    other = Standardizer.fit(dataclasses.replace(ds, features={**ds.features, "audio": poisoned}))
    np.testing.assert_array_equal(other.mean["audio"], Standardizer.fit(ds).mean["audio"])
    with pytest.raises(ValueError, match="standardized already"):
        standardize(scaled)


def test_synthetic_is_deterministic_and_seed_dependent():
    a, b, c = generate_corpus(seed=1), generate_corpus(seed=1), generate_corpus(seed=2)
    d = "synth_train_005"
    np.testing.assert_array_equal(a.dialogues[d].features["text"], b.dialogues[d].features["text"])
    assert a.dialogues[d].labels == b.dialogues[d].labels
    assert a.dialogues[d].labels != c.dialogues[d].labels


def test_synthetic_is_iemocap_shaped(synthetic):
    s = synthetic.summary()
    assert s["synthetic"] is True
    assert s["splits"]["train"]["dialogues"] == 120 and s["splits"]["test"]["dialogues"] == 31
    assert s["modalities"] == {"text": 100, "audio": 100, "visual": 512}
    assert s["longest_dialogue"] == 110 and synthetic.max_len == 110
    assert 40 <= synthetic.lengths.mean() <= 58  # IEMOCAP: 49.2 utterances per dialogue
    train = s["splits"]["train"]["class_counts"]
    shares = {k: v / sum(train.values()) for k, v in train.items()}
    # IEMOCAP training shares under merged4: happy .215, angry .413, sad .144, neutral .228
    for cls, real in {"happy": 0.215, "angry": 0.413, "sad": 0.144, "neutral": 0.228}.items():
        assert abs(shares[cls] - real) < 0.06, (cls, shares[cls])
    assert synthetic.speaker_names == ("F", "M")


def test_synthetic_labels_have_inertia_and_context_only_utterances():
    corpus = generate_corpus(seed=0)
    same = []
    for d in corpus.dialogues.values():
        last = {}
        for s, lab in zip(d.speakers, d.labels):
            if s in last:
                same.append(last[s] == lab)
            last[s] = lab
    assert 0.6 < np.mean(same) < 0.85  # IEMOCAP: 0.72


def test_synthetic_signal_strength_is_ordered_text_audio_visual(synthetic):
    """A nearest-class-mean probe: text separates classes best, then audio, then visual."""
    train, test = synthetic.subset("train"), synthetic.subset("test")
    acc = {}
    for m in ("text", "audio", "visual"):
        x, y = train.features[m][train.mask], train.labels[train.mask]
        means = np.stack([x[y == c].mean(axis=0) for c in range(synthetic.num_classes)])
        xt, yt = test.features[m][test.mask], test.labels[test.mask]
        pred = np.argmin(((xt[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
        acc[m] = (pred == yt).mean()
    assert acc["text"] > acc["audio"] > acc["visual"] > 0.3, acc


def test_synthetic_goes_through_the_pickle_layout_and_is_flagged(tmp_path):
    path = write_synthetic(tmp_path / "s.pkl", seed=0)
    from_file = read_corpus(path)
    in_memory = synthetic_corpus(seed=0)
    assert from_file.synthetic and in_memory.synthetic
    d = "synth_test_003"
    np.testing.assert_array_equal(from_file.dialogues[d].features["audio"], in_memory.dialogues[d].features["audio"])
    with pytest.raises(OutputExistsError, match="refusing to overwrite"):
        write_synthetic(path)


def test_cli_summary_of_synthetic_data():
    out = subprocess.run([sys.executable, "-m", "mser.cli", "data", "summary", "--data", "synthetic"],
                         capture_output=True, text=True, cwd=REPO, check=True)
    summary = json.loads(out.stdout)
    assert summary["synthetic"] is True
    assert summary["splits"]["train"]["dialogues"] == 120 and summary["splits"]["test"]["dialogues"] == 31


def test_cli_reports_bad_input_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    out = subprocess.run([sys.executable, "-m", "mser.cli", "data", "summary", "--data", str(bad)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 1
    assert "bad.pkl: not a readable pickle" in out.stderr and "Traceback" not in out.stderr
