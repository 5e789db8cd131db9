"""Reusing a traced model across seeds (training.TracedModels) gives exactly the numbers of building a new model."""
from __future__ import annotations

import numpy as np
import pytest

from model_utils import runner
from model_utils.run import schedule, seed


def _run(monkeypatch, experiment: str, reuse: bool):
    monkeypatch.setattr(seed, "REUSE_TRACES", reuse)
    seed.traced_models.cache_clear()
    run = runner.run_experiment(experiment, "synthetic-small", seeds=[0, 1], epochs=2, verbose=0)
    return run, seed.traced_models().reused


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
    monkeypatch.setattr(seed, "REUSE_TRACES", True)
    seed.traced_models.cache_clear()
    runner.run_experiment("text-bilstm", "synthetic-small", seeds=[0], epochs=1, verbose=0)
    runner.run_experiment(runner.resolve_experiment("text-bilstm", ["units=8"]), "synthetic-small", seeds=[0],
                          epochs=1, verbose=0)
    runner.run_experiment("text-bilstm", "synthetic-small", seeds=[1], epochs=1, verbose=0)
    assert seed.traced_models().reused == 1  # only the third run, same key as the first


def test_the_scheduler_starts_the_longest_experiments_first_and_keeps_a_lane_on_one_experiment(monkeypatch):
    """Lanes are single-thread pools here and ``run_job`` a stub that records which lane ran what."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(schedule, "load_costs", lambda: ({"long": 30.0, "mid": 20.0, "short": 1.0, "tiny": 0.5}, 30.0))
    ran = []

    def job(name, seed):
        ran.append((threading.current_thread().name, name, seed))
        time.sleep({"long": 0.06, "mid": 0.04}.get(name, 0.01))
        return name, seed

    monkeypatch.setattr(schedule, "run_job", job)
    lanes = [ThreadPoolExecutor(1, thread_name_prefix=f"lane{i}") for i in range(2)]
    jobs = {n: [(n, s) for s in range(3)] for n in ("tiny", "short", "mid", "long")}
    finished = list(schedule.schedule(jobs, lanes))
    assert sorted(r for _, r in finished) == sorted((n, s) for n in jobs for s in range(3))  # each once
    assert {ran[0][1], ran[1][1]} == {"long", "mid"}  # the two longest start first
    lane_of_long = ran[0][0] if ran[0][1] == "long" else ran[1][0]
    long_seeds = [(lane, s) for lane, n, s in ran if n == "long"]
    assert [lane for lane, _ in long_seeds[:2]] == [lane_of_long] * 2  # seeds 0 and 1 on the lane that traced it


def test_an_op_without_a_deterministic_kernel_is_named_with_the_choices():
    import tensorflow as tf

    from model_utils.training import DeterminismUnavailableError, determinism_error

    error = tf.errors.UnimplementedError(None, None, "A deterministic GPU implementation of SparseSegmentMean is not "
                                                     "currently available.")
    mapped = determinism_error(error)
    assert isinstance(mapped, DeterminismUnavailableError) and isinstance(mapped, ValueError)
    assert "no deterministic kernel" in str(mapped) and "SparseSegmentMean" in str(mapped)
    assert "CUDA_VISIBLE_DEVICES=" in str(mapped) and "\n" not in str(mapped)
    other = tf.errors.UnimplementedError(None, None, "something else")
    assert determinism_error(other) is other


def test_the_profile_of_a_run_counts_its_seeds_and_reused_traces(monkeypatch, tmp_path):
    from model_utils.run.profiling import profile, profile_markdown

    monkeypatch.setattr(seed, "REUSE_TRACES", True)
    seed.traced_models.cache_clear()
    runner.run_experiment("cnn-text", "synthetic-small", seeds=[0, 1], epochs=2, verbose=0, out=tmp_path / "cnn-text")
    report = profile(tmp_path)
    assert report["experiments"]["cnn-text"]["seeds"] == 2 and report["experiments"]["cnn-text"]["reused_traces"] == 1
    assert report["overall"]["lanes"] == 1 and 0 < report["overall"]["busy_fraction"] <= 1
    assert "| cnn-text | 2 | 1 |" in profile_markdown(report)
    cnn = report["experiments"]["cnn-text"]
    measured = sum(cnn[k] for k in ("build", "steps", "validation", "test_prediction", "clear_session", "fit_other",
                                    "save", "unaccounted"))
    assert measured == pytest.approx(cnn["wall"], abs=0.5)  # every second of a seed is placed
    from model_utils.run.profiling import seed_timings

    assert all(row["save"] > 0 for row in seed_timings(tmp_path))  # each seed timed its save (totals are rounded)


def test_the_busy_fraction_never_passes_one_when_seeds_fill_the_span(monkeypatch):
    """Two back-to-back seeds of 0.26 s fill a 0.52 s span: the workers' totals rounded to 0.1 s would say 0.6 s."""
    from model_utils.run import profiling

    def seed(n, started):
        return {"experiment": "x", "seed": n, "pid": 1, "started": started, "ended": started + 0.26, "wall": 0.26,
                "build": 0.0, "steps": 0.2, "trace": 0.0, "validation": 0.0, "test_prediction": 0.0, "epochs": 1,
                "reused_trace": False, "clear_session": 0.0, "fit_other": 0.0, "save": 0.0, "unaccounted": 0.06}

    monkeypatch.setattr(profiling, "seed_timings", lambda root: [seed(0, 100.0), seed(1, 100.26)])
    overall = profiling.profile("unused")["overall"]
    assert overall["lanes"] == 1 and overall["busy_fraction"] == 1.0 and overall["idle"] == 0.0
