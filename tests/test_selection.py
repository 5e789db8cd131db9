"""`mser select`: configurations chosen by cross-validation inside the training dialogues, never by the test split."""
from __future__ import annotations

import json

import pytest

from data_utils.dataset import load_dataset
from model_utils.run import selection

SMALL = "synthetic-small"


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    out = tmp_path_factory.mktemp("select")
    table = selection.select(selection.candidates([SMALL], ["cnn-text", "early-fusion-text"]), out=out, seeds=[0],
                             epochs=1, verbose=0)
    return out, table


def test_the_best_cross_validated_candidate_is_selected(selected):
    _, table = selected
    assert list(table["experiment"]) == ["cnn-text", "early-fusion-text"]
    assert table["selected"].sum() == 1
    assert table.loc[table["selected"], "cv_macro_f1"].item() == table["cv_macro_f1"].max()
    for column in ("valid_macro_f1", "test_macro_f1", "ensemble_macro_f1"):
        assert table[column].between(0, 1).all()
    md = selection.to_markdown(table)
    assert "(selected)**" in md and "CV Macro-F1 (train sessions)" in md and "SYNTHETIC" in md


def test_cross_validation_for_selection_never_touches_the_test_split(selected):
    out, _ = selected
    ds = load_dataset(SMALL)
    config = json.loads((out / "synthetic-small" / "cv" / "cnn-text--cv-train-sessions" / "config.json")
                        .read_text())
    folds = config["evaluation"]["folds"]
    assert [f["session"] for f in folds] == ["Ses01", "Ses02", "Ses03", "Ses04"]  # Ses05 is the test split
    assert sum(f["test_dialogues"] for f in folds) == len(ds.splits["train"])
    summary = json.loads((out / "synthetic-small" / "cv" / "cnn-text--cv-train-sessions" / "summary.json")
                         .read_text())
    assert summary["utterances_scored"] == int(ds.subset("train").mask.sum())
