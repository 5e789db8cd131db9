"""Speakers as parties of their dialogue: the cost of a speaker-aware model does not grow with the corpus's speaker
names, and a speaker seen only in test never meets an untrained embedding row."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from data_utils.dataset import from_corpus, party_indices, with_validation_split
from model_utils import training
from model_utils.architectures import MAX_PARTIES, build_for, required_inputs, speaker_rows
from model_utils.experiments import get_experiment
from model_utils.runner import resolve_experiment


def _renamed(corpus, names_for):
    """``corpus`` with each dialogue's two speakers renamed ``names_for(i)`` (i = the dialogue's position)."""
    dialogues = {}
    for i, (did, d) in enumerate(corpus.dialogues.items()):
        a, b = names_for(i, did)
        mapping = {s: (a if k == 0 else b) for k, s in enumerate(dict.fromkeys(d.speakers))}
        dialogues[did] = dataclasses.replace(d, speakers=tuple(mapping[s] for s in d.speakers))
    return dataclasses.replace(corpus, dialogues=dialogues)


@pytest.fixture(scope="module")
def corpus():
    """20 training and 4 test dialogues of 4-20 utterances, two speakers each (F and M)."""
    from data_utils.synthetic import SyntheticConfig, generate_corpus

    return generate_corpus(seed=5, config=SyntheticConfig(n_train=20, n_test=4, mean_length=12, sd_length=4,
                                                           min_length=4, max_length=20))


@pytest.fixture(scope="module")
def forty(corpus):
    """40 speaker names in training, two per dialogue; the test dialogues' 8 speakers appear nowhere in training."""
    test = set(corpus.splits["test"])
    return from_corpus(_renamed(corpus, lambda i, did: (f"T{i}a", f"T{i}b") if did in test
                                else (f"S{2 * i}", f"S{2 * i + 1}")))


def test_parties_number_speakers_by_first_turn():
    assert party_indices(["B", "A", "B", "C", "A"]) == [0, 1, 0, 2, 1]


def test_forty_speaker_names_build_the_same_model_as_two(corpus, forty):
    two = from_corpus(corpus)
    assert len(two.speaker_names) == 2 and len(forty.speaker_names) == 48  # 40 in training, 8 only in test
    assert two.num_parties == forty.num_parties == 2
    for name in ("text-context", "multimodal"):
        exp = get_experiment(name)
        a, b = build_for(exp, two.subset("train")), build_for(exp, forty.subset("train"))
        assert len(a.layers) == len(b.layers) and a.count_params() == b.count_params()
        assert "party" in {t.name for t in a.inputs}
    assert required_inputs("text_context", ("text",)) == ("text", "present", "party")


def test_rows_are_capped_and_global_identity_stays_available(forty):
    crowded = dataclasses.replace(forty, parties=np.where(forty.parties >= 0, np.arange(forty.max_len) % 9, -1))
    assert crowded.num_parties == 9 and speaker_rows(crowded) == MAX_PARTIES
    assert speaker_rows(forty, "global") == len(forty.speaker_names)
    exp = resolve_experiment(get_experiment("text-context"), ["speaker_identity=global"])
    model = build_for(exp, forty.subset("train"))
    assert {t.name for t in model.inputs} == {"text", "present", "speaker"}
    with pytest.raises(ValueError, match="speaker_identity must be one of"):
        build_for(resolve_experiment(get_experiment("text-context"), ["speaker_identity=name"]), forty)


def test_a_speaker_seen_only_in_test_gets_a_trained_representation(forty):
    ds = with_validation_split(forty)
    train, valid, test = ds.subset("train"), ds.subset("valid"), ds.subset("test")
    assert not set(test.speaker_names[i] for i in np.unique(test.speakers[test.present])) & \
        set(train.speaker_names[i] for i in np.unique(train.speakers[train.present]))
    exp = get_experiment("text-context")
    training.set_seed(0)
    model = build_for(exp, train)
    table = model.get_layer("speaker_embedding")
    before = np.array(table.get_weights()[0])
    training.fit(model, train, valid, exp.modalities, exp.train_config(epochs=2, batch_size=4), verbose=False)
    moved = np.abs(table.get_weights()[0] - before).max(axis=1) > 0  # rows training updated
    used_in_test = np.unique(np.minimum(test.model_inputs(speaker="party")["party"][test.present], len(before) - 1))
    assert len(before) == 2 and moved[used_in_test].all()
