"""openSMILE audio features: extraction in a TensorFlow-free worker, merging into a corpus, and the CLI."""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import re
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from data_utils.audio_features import (AudioFeatureError, OpenSmileMissingError, add_audio_features,
                                       extract_functionals)
from data_utils.corpus import Corpus, DataFormatError, Dialogue, read_corpus, write_corpus
from mser.commands import features_audio

REPO = Path(__file__).resolve().parent.parent
HAVE_OPENSMILE = importlib.util.find_spec("opensmile") is not None
SYNTH = shutil.which("sox") or shutil.which("espeak-ng")
needs_extraction = pytest.mark.skipif(
    not (HAVE_OPENSMILE and SYNTH),
    reason="needs the opensmile package (pip install opensmile) and sox or espeak-ng on PATH "
           "(apt-get install -y sox espeak-ng)")

DIALOGUES = {
    "Ses01F_impro01": ["Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_F001"],
    "Ses01M_script02": ["Ses01M_script02_M000", "Ses01M_script02_F000"],
}
SENTENCES = ["Excuse me.", "Do you have your forms?", "Yeah.", "I can't believe it!", "Oh, that's wonderful news."]
UTTERANCES = [u for ids in DIALOGUES.values() for u in ids]


def make_base(*, audio_width: int | None = None) -> Corpus:
    """Two dialogues with random 16-d text features (and, if asked, placeholder audio features)."""
    rng = np.random.default_rng(0)
    sentences = iter(SENTENCES)
    dialogues = {}
    for did, ids in DIALOGUES.items():
        features = {"text": rng.standard_normal((len(ids), 16)).astype(np.float32)}
        if audio_width:
            features["audio"] = np.zeros((len(ids), audio_width), np.float32)
        dialogues[did] = Dialogue(id=did, utterance_ids=tuple(ids), speakers=tuple(u[-4] for u in ids),
                                  labels=("neu", "hap", "sad")[:len(ids)],
                                  sentences=tuple(next(sentences) for _ in ids), features=features)
    return Corpus(dialogues=dialogues, splits={"train": ("Ses01F_impro01",), "test": ("Ses01M_script02",)},
                  synthetic=True, source="base.pkl", description="test base",
                  modalities=("text", "audio") if audio_width else ("text",))


def synth_wav(path: Path, i: int) -> Path:
    """A distinct short sound per ``i``: a sox tone of its own pitch and length, else espeak-ng speech."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which("sox"):
        cmd = ["sox", "-n", "-r", "16000", "-c", "1", str(path), "synth", str(0.4 + 0.1 * i), "sine",
               str(220 * (i + 1))]
    else:
        cmd = ["espeak-ng", "-w", str(path), SENTENCES[i % len(SENTENCES)]]
    subprocess.run(cmd, check=True, capture_output=True)
    return path


def write_raw_wav(path: Path, samples: np.ndarray) -> Path:
    """A 16 kHz mono 16-bit wav of ``samples``, written with the standard library."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def iemocap_tree(root: Path) -> Path:
    """Wavs for every utterance in IEMOCAP's Session1/sentences/wav/<dialogue>/ layout, plus one stray wav."""
    for i, u in enumerate(UTTERANCES):
        synth_wav(root / "Session1" / "sentences" / "wav" / u.rsplit("_", 1)[0] / f"{u}.wav", i)
    synth_wav(root / "Session1" / "sentences" / "wav" / "Ses01F_impro01" / "Ses01F_impro01_F099.wav", 9)
    return root


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    if not SYNTH:
        pytest.skip("needs sox or espeak-ng on PATH (apt-get install -y sox espeak-ng)")
    return iemocap_tree(tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def merged(audio_dir) -> Corpus:
    if not HAVE_OPENSMILE:
        pytest.skip("needs the opensmile package (pip install opensmile)")
    return add_audio_features(make_base(audio_width=4), audio_dir)


def fake_opensmile_path(tmp_path: Path) -> str:
    """A PYTHONPATH entry whose ``opensmile`` package fails to import, as if the extra were not installed."""
    (tmp_path / "fake" / "opensmile").mkdir(parents=True)
    (tmp_path / "fake" / "opensmile" / "__init__.py").write_text("raise ImportError('no opensmile here')\n")
    return str(tmp_path / "fake")


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mser features")
    features_audio.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


# ------------------------------------------------------------------------------------------------ extraction

@needs_extraction
def test_egemaps_rows_are_finite_distinct_and_in_utterance_order(merged):
    base = make_base(audio_width=4)
    assert merged.modalities == ("text", "audio")
    rows = []
    for did, dialogue in merged.dialogues.items():
        audio = dialogue.features["audio"]
        assert audio.dtype == np.float32 and audio.shape == (len(DIALOGUES[did]), 88)
        assert np.isfinite(audio).all()
        np.testing.assert_array_equal(dialogue.features["text"], base.dialogues[did].features["text"])
        assert dialogue.utterance_ids == base.dialogues[did].utterance_ids
        assert dialogue.labels == base.dialogues[did].labels
        rows.extend(audio)
    assert len({row.tobytes() for row in rows}) == len(UTTERANCES)
    assert dict(merged.splits) == dict(base.splits)
    assert merged.synthetic and merged.label_names == base.label_names


@needs_extraction
def test_rows_match_a_direct_extraction_of_each_wav(merged, audio_dir):
    wav = next(audio_dir.rglob("Ses01M_script02_F000.wav"))
    from_corpus = merged.dialogues["Ses01M_script02"].features["audio"][1]
    np.testing.assert_array_equal(extract_functionals([wav])[0], from_corpus)


@needs_extraction
def test_merged_corpus_round_trips_through_the_pickle(merged, tmp_path):
    back = read_corpus(write_corpus(merged, tmp_path / "with_audio.pkl"))
    assert back.modalities == ("text", "audio")
    for did, dialogue in merged.dialogues.items():
        for m in ("text", "audio"):
            np.testing.assert_array_equal(back.dialogues[did].features[m], dialogue.features[m])
    assert back.synthetic and "eGeMAPSv02" in back.description and "1 unmatched" in back.description


@needs_extraction
def test_unmatched_wavs_are_logged(audio_dir, caplog):
    ids = DIALOGUES["Ses01M_script02"]
    base = make_base()
    small = Corpus(dialogues={"Ses01M_script02": base.dialogues["Ses01M_script02"]},
                   splits={"test": ("Ses01M_script02",)}, source="small.pkl")
    with caplog.at_level(logging.WARNING, logger="data_utils.audio_features"):
        add_audio_features(small, audio_dir)
    assert f"{len(UTTERANCES) + 1 - len(ids)} wav file(s)" in caplog.text and "small.pkl" in caplog.text


@needs_extraction
def test_compare_functionals_have_6373_dimensions(audio_dir):
    wav = next(audio_dir.rglob("Ses01F_impro01_F000.wav"))
    features = extract_functionals([wav], feature_set="compare")
    assert features.shape == (1, 6373) and np.isfinite(features).all()


@needs_extraction
def test_extraction_works_in_a_process_that_imported_tensorflow(audio_dir):
    pytest.importorskip("tensorflow")
    wav = next(audio_dir.rglob("Ses01F_impro01_F000.wav"))
    assert extract_functionals([wav]).shape == (1, 88)


@needs_extraction
def test_worker_never_imports_tensorflow(audio_dir, tmp_path):
    wav = next(audio_dir.rglob("Ses01F_impro01_F000.wav"))
    request = {"feature_set": "eGeMAPSv02", "wavs": [str(wav)], "matrix": str(tmp_path / "m.npy"),
               "result": str(tmp_path / "r.json")}
    (tmp_path / "request.json").write_text(json.dumps(request))
    probe = ("import runpy, sys\n"
             "try:\n"
             "    runpy.run_module('data_utils._opensmile_worker', run_name='__main__', alter_sys=True)\n"
             "finally:\n"
             "    print('tensorflow:', 'tensorflow' in sys.modules, 'opensmile:', 'opensmile' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "request.json")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "tensorflow: False opensmile: True" in proc.stdout
    assert np.load(tmp_path / "m.npy").shape == (1, 88)


# ------------------------------------------------------------------------------------------------ failures

def test_missing_wavs_name_the_base_file_dialogue_count_and_ids(tmp_path):
    for u in UTTERANCES:
        if u not in ("Ses01F_impro01_M000", "Ses01F_impro01_F001", "Ses01M_script02_F000"):
            (tmp_path / f"{u}.wav").touch()
    with pytest.raises(DataFormatError, match="have no <utterance_id>.wav") as e:
        add_audio_features(make_base(), tmp_path)
    message = str(e.value)
    assert message.startswith("base.pkl: dialogue 'Ses01F_impro01': ")
    assert "2 of its 3 utterances have no <utterance_id>.wav" in message
    assert "(Ses01F_impro01_M000, Ses01F_impro01_F001)" in message
    assert "3 utterances in 2 dialogue(s)" in message


@pytest.mark.skipif(not HAVE_OPENSMILE, reason="needs the opensmile package (pip install opensmile)")
def test_silent_too_short_wav_gives_a_non_finite_error_naming_it(tmp_path):
    wav = write_raw_wav(tmp_path / "blip.wav", np.zeros(160))
    with pytest.raises(AudioFeatureError, match=rf"^{re.escape(str(wav))}: openSMILE gave \d+ non-finite eGeMAPSv02"):
        extract_functionals([wav])


@pytest.mark.skipif(not HAVE_OPENSMILE, reason="needs the opensmile package (pip install opensmile)")
def test_unreadable_wav_gives_a_worker_error_naming_it(tmp_path):
    good = write_raw_wav(tmp_path / "good.wav", 3000 * np.sin(np.arange(8000) / 5))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not a wav file")
    with pytest.raises(AudioFeatureError, match=rf"^{re.escape(str(broken))}: openSMILE could not process it"):
        extract_functionals([good, broken])


def test_missing_opensmile_says_how_to_install_it(tmp_path, monkeypatch):
    write_raw_wav(tmp_path / "x.wav", np.zeros(1600))
    monkeypatch.setenv("PYTHONPATH", fake_opensmile_path(tmp_path))
    with pytest.raises(OpenSmileMissingError, match=r"pip install '\.\[audio\]'"):
        extract_functionals([tmp_path / "x.wav"])


def test_unknown_feature_set_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown feature set 'mfcc'; choose one of egemaps, compare"):
        extract_functionals([tmp_path / "x.wav"], feature_set="mfcc")


# ------------------------------------------------------------------------------------------------ CLI

@needs_extraction
def test_cli_writes_the_corpus_and_prints_a_json_summary(audio_dir, tmp_path, capsys):
    write_corpus(make_base(), tmp_path / "base.pkl")
    argv = ["audio", "--audio-dir", str(audio_dir), "--base", str(tmp_path / "base.pkl"),
            "--out", str(tmp_path / "out.pkl")]
    assert run_cli(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    summary = json.loads(out[0])
    assert summary["utterances"] == len(UTTERANCES) and summary["widths"] == {"text": 16, "audio": 88}
    assert read_corpus(tmp_path / "out.pkl").modalities == ("text", "audio")

    assert run_cli(argv) == 1
    err = capsys.readouterr().err
    assert "out.pkl exists; refusing to overwrite" in err and "Traceback" not in err
    assert run_cli(argv + ["--force"]) == 0


def test_cli_reports_missing_wavs_without_a_traceback(tmp_path, capsys):
    write_corpus(make_base(), tmp_path / "base.pkl")
    (tmp_path / "wavs").mkdir()
    code = run_cli(["audio", "--audio-dir", str(tmp_path / "wavs"), "--base", str(tmp_path / "base.pkl"),
                    "--out", str(tmp_path / "out.pkl")])
    err = capsys.readouterr().err
    assert code == 1 and "base.pkl: dialogue 'Ses01F_impro01'" in err and "Traceback" not in err
    assert not (tmp_path / "out.pkl").exists()


def test_cli_reports_a_missing_opensmile(tmp_path, capsys, monkeypatch):
    write_corpus(make_base(), tmp_path / "base.pkl")
    for u in UTTERANCES:
        write_raw_wav(tmp_path / f"{u}.wav", np.zeros(1600))
    monkeypatch.setenv("PYTHONPATH", fake_opensmile_path(tmp_path))
    code = run_cli(["audio", "--audio-dir", str(tmp_path), "--base", str(tmp_path / "base.pkl"),
                    "--out", str(tmp_path / "out.pkl"), "--feature-set", "compare"])
    err = capsys.readouterr().err
    assert code == 1 and "pip install '.[audio]'" in err and "Traceback" not in err
