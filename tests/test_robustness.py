"""A trained model under missing and noisy modalities (``mser robustness``) and what its cross-modal attention looks at.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from model_utils.attention import cross_attention
from model_utils.robustness import condition_names, perturbed, robustness, run_folds
from model_utils.runner import run_experiment
from model_utils.trained import load_run
from mser.cli import main

SMALL = "synthetic-small"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "text-bilstm"
    run_experiment("text-bilstm", SMALL, seeds=[0, 1], epochs=2, out=out, verbose=0)
    return out


@pytest.fixture(scope="module")
def multimodal_run(tmp_path_factory):
    """Our multimodal model on the built-in synthetic data, trained long enough to read its text."""
    out = tmp_path_factory.mktemp("runs") / "multimodal"
    run_experiment("multimodal", "synthetic", seeds=[0], epochs=4, out=out, verbose=0)
    return out


def _per_seed(result: dict, condition: str, metric: str = "macro_f1") -> list[float]:
    return next(c for c in result["conditions"] if c["condition"] == condition)[metric]["per_seed"]


def test_intact_is_the_runs_own_score_and_an_unread_modality_changes_nothing(text_run):
    result = robustness(text_run, conditions=["no-audio", "no-visual+audio", "noise-audio-2"])
    summary = json.loads((text_run / "summary.json").read_text())
    for metric in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        assert _per_seed(result, "intact", metric) == summary["metrics"][metric]["per_seed"]  # exactly
        for condition in ("no-audio", "no-visual+audio", "noise-audio-2"):  # text-bilstm reads text only
            assert _per_seed(result, condition, metric) == summary["metrics"][metric]["per_seed"]
    assert [c["condition"] for c in result["conditions"]][0] == "intact"
    assert condition_names(["text"]) == ["intact", "no-text", "noise-text-0.5", "noise-text-1", "noise-text-2"]


def test_without_its_text_a_text_model_answers_every_dialogue_of_a_length_alike(text_run):
    """Removed text leaves the model no input: its posteriors depend on the dialogue's length alone (checked over
    every dialogue of the data, where lengths repeat)."""
    run = load_run(text_run)
    every = run.inputs.standardizers["test-split"].transform(run.dataset(SMALL))
    probabilities = run.posteriors(perturbed(every, ["text"], None, 0.0, np.random.default_rng(0)), seed=0)
    by_length: dict[int, np.ndarray] = {}
    for i, length in enumerate(every.lengths):
        first = by_length.setdefault(int(length), probabilities[i, :length])
        assert np.array_equal(probabilities[i, :length], first)
    assert len(by_length) < len(every.lengths)  # some lengths repeat, so the check compared dialogues
    assert not np.allclose(run.posteriors(every, seed=0), probabilities)


def test_noise_is_reproducible_with_the_same_seed(text_run):
    a = robustness(text_run, conditions=["noise-text-1"], seed=3)
    b = robustness(text_run, conditions=["noise-text-1"], seed=3)
    c = robustness(text_run, conditions=["noise-text-1"], seed=4)
    assert a == b
    assert _per_seed(a, "noise-text-1") != _per_seed(c, "noise-text-1")
    with pytest.raises(ValueError, match="unknown condition 'no-speech'"):
        robustness(text_run, conditions=["no-speech"])


def test_a_cross_validated_run_is_scored_fold_by_fold(tmp_path):
    out = tmp_path / "cv"
    run_experiment("text-bilstm", SMALL, seeds=[0], epochs=1, cv="sessions", out=out, verbose=0)
    result = robustness(out, conditions=["no-text"])
    summary = json.loads((out / "summary.json").read_text())
    assert result["evaluation"] == "cv-sessions"
    assert _per_seed(result, "intact") == summary["metrics"]["macro_f1"]["per_seed"]


def test_mser_robustness_writes_the_documented_json_and_a_figure(multimodal_run, tmp_path, capsys):
    out, figure = tmp_path / "robustness.json", tmp_path / "robustness.png"
    assert main(["robustness", str(multimodal_run), "--out", str(out), "--figure", str(figure)]) == 0
    table = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert set(result) == {"run", "experiment", "data", "evaluation", "seeds", "noise_seed", "epochs_cap", "conditions"}
    names = [c["condition"] for c in result["conditions"]]
    assert names[:7] == ["intact", "no-text", "no-audio", "no-visual", "no-text+audio", "no-text+visual",
                         "no-audio+visual"]
    assert "noise-visual-2" in names and figure.stat().st_size > 0
    row = result["conditions"][1]
    assert set(row) == {"condition", "accuracy", "macro_f1", "weighted_f1", "uar", "delta_macro_f1"}
    assert set(row["macro_f1"]) == {"mean", "std", "per_seed"}
    assert row["macro_f1"]["mean"] < result["conditions"][0]["macro_f1"]["mean"]  # no-text below intact
    assert row["delta_macro_f1"] == pytest.approx(row["macro_f1"]["mean"] - result["conditions"][0]["macro_f1"]["mean"])
    assert "| no-text |" in table and "SYNTHETIC" in table
    assert main(["robustness", str(multimodal_run), "--out", str(out)]) == 1  # exists: --force to replace


def test_cross_attention_comes_from_the_trained_layers_one_row_per_text_utterance(multimodal_run, text_run):
    result = cross_attention(multimodal_run)
    run = load_run(multimodal_run)
    (_, test), = run_folds(run)[0]
    length = int(test.subset([result["dialogue_id"]]).lengths[0])
    assert set(result["layers"]) == {"text_to_audio", "text_to_visual"}
    for weights in result["layers"].values():
        assert weights.shape == (length, length) and np.allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert len(result["speakers"]) == length
    from model_utils.report.plots import plot_attention

    fig = plot_attention(result)
    assert "SYNTHETIC" in fig._suptitle.get_text() and "text of utterance" in fig.axes[0].get_ylabel()
    with pytest.raises(ValueError, match="has no attention layer 'text_to_audio'"):
        cross_attention(text_run)


def test_a_conditions_noise_is_its_own_wherever_it_is_asked_and_must_be_finite(text_run):
    alone = robustness(text_run, conditions=["noise-text-1"])
    after = robustness(text_run, conditions=["no-text", "noise-text-1", "noise-text-1"])
    assert _per_seed(alone, "noise-text-1") == _per_seed(after, "noise-text-1")
    assert [c["condition"] for c in after["conditions"]] == ["intact", "no-text", "noise-text-1"]  # once each
    for bad in ("noise-text-inf", "noise-text-1e400", "noise-text-nan", "noise-text-0"):
        with pytest.raises(ValueError, match="a finite sigma > 0"):
            robustness(text_run, conditions=[bad])
    with pytest.raises(ValueError, match="no condition asked for"):
        robustness(text_run, conditions=[])
