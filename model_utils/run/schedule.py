"""The order in which (experiment, seed) jobs go to the worker lanes: longest first, one experiment per lane.

The cost of one seed of each experiment is data (:data:`COSTS_FILE`, ``costs.json`` beside this module, written by
:func:`model_utils.run.profiling.write_costs` from a profiled run), never numbers in code: it decides only the
order of the jobs, never a result.
"""
from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Mapping

from .lanes import run_job

COSTS_FILE = Path(__file__).with_name("costs.json")


@functools.lru_cache(maxsize=None)
def load_costs(path: str | Path = COSTS_FILE) -> tuple[dict[str, float], float]:
    """(seconds per seed by experiment, seconds for one not listed) from a costs file (:data:`COSTS_FILE`). The
    longest experiments start first, so no worker idles at the end while another finishes a long one (with only the
    eight longest listed, text-context counted as 30 s and ran last, and one worker waited 53 s for it)."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    return {str(k): float(v) for k, v in doc["seconds_per_seed"].items()}, float(doc["default_seconds_per_seed"])


def cost(name: str) -> float:
    """Seconds one seed of experiment ``name`` is expected to take (a derived ``base[k=v]`` costs what its base
    does): only the order of jobs depends on it."""
    seconds, default = load_costs()
    return seconds.get(name.split("[")[0], default)


def schedule(jobs: Mapping[str, list[tuple]], lanes: list):
    """Run ``jobs`` (argument tuples of :func:`run_job`, by experiment) on ``lanes`` (one worker process each) and
    yield ``(experiment, RunResult)`` as seeds finish.

    A lane keeps to one experiment until its seeds are all taken, so every seed after the lane's first reuses the
    model it traced (``training.TracedModels``); a free lane starts the longest experiment not yet started
    (longest-processing-time first, by :func:`cost` × seeds), and when none is left, helps with the
    experiment that has the most work left, so no lane idles while work remains.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = {n: list(j) for n, j in jobs.items()}
    unstarted = sorted(pending, key=lambda n: -cost(n) * len(pending[n]))
    current: list[str | None] = [None] * len(lanes)

    def next_job(lane: int):
        name = current[lane]
        if not (name and pending.get(name)):
            name = unstarted.pop(0) if unstarted else max(
                (n for n in pending if pending[n]), key=lambda n: cost(n) * len(pending[n]), default=None)
            current[lane] = name
        if name is None:
            return None
        if name in unstarted:
            unstarted.remove(name)
        return name, pending[name].pop(0)

    running = {}
    try:
        for lane in range(len(lanes)):
            job = next_job(lane)
            if job:
                running[lanes[lane].submit(run_job, *job[1])] = (lane, job[0])
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                lane, name = running.pop(future)
                result = future.result()
                job = next_job(lane)
                if job:
                    running[lanes[lane].submit(run_job, *job[1])] = (lane, job[0])
                yield name, result
    except BaseException:  # Ctrl-C, SIGTERM (the CLI raises KeyboardInterrupt for it) or a failed seed
        for lane in lanes:
            lane.shutdown(wait=False, cancel_futures=True)
        end_workers()
        raise
    for lane in lanes:
        lane.shutdown(wait=True)


def end_workers(grace: float = 10.0) -> None:
    """Stop every worker process this process started: SIGTERM (a worker then removes its staging folders and
    exits, :func:`worker_init`), SIGKILL for any still running after ``grace`` seconds."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(1.0)
