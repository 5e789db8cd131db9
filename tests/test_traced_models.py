"""Reusing a traced model across seeds (training.TracedModels) gives exactly the numbers of building a new model."""
from __future__ import annotations

import numpy as np
import pytest

from model_utils import runner


def _run(monkeypatch, experiment: str, reuse: bool):
    monkeypatch.setattr(runner, "REUSE_TRACES", reuse)
    runner.traced_models.cache_clear()
    run = runner.run_experiment(experiment, "synthetic-small", seeds=[0, 1], epochs=2, verbose=0)
    return run, runner.traced_models().reused


@pytest.mark.parametrize("experiment", ["text-bilstm", "text-context"])
def test_a_reinitialised_traced_model_gives_bit_identical_numbers_to_a_new_one(monkeypatch, experiment):
    fresh, fresh_reused = _run(monkeypatch, experiment, reuse=False)
    reused, reused_count = _run(monkeypatch, experiment, reuse=True)
    assert fresh_reused == 0 and reused_count == 1  # seed 1 ran on seed 0's traced model
    for a, b in zip(fresh.seeds, reused.seeds):
        assert a.seed == b.seed
        np.testing.assert_array_equal(a.probabilities, b.probabilities)  # bit for bit, not approximately
        assert a.metrics == b.metrics and a.history == b.history and a.best_epoch == b.best_epoch
    assert fresh.seeds[0].metrics != fresh.seeds[1].metrics  # the seeds differ: the reuse did not copy seed 0


def test_a_model_of_another_configuration_is_never_reused(monkeypatch):
    monkeypatch.setattr(runner, "REUSE_TRACES", True)
    runner.traced_models.cache_clear()
    runner.run_experiment("text-bilstm", "synthetic-small", seeds=[0], epochs=1, verbose=0)
    runner.run_experiment(runner.resolve_experiment("text-bilstm", ["units=8"]), "synthetic-small", seeds=[0],
                          epochs=1, verbose=0)
    runner.run_experiment("text-bilstm", "synthetic-small", seeds=[1], epochs=1, verbose=0)
    assert runner.traced_models().reused == 1  # only the third run, same key as the first
