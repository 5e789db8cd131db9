"""Where seeds train: worker lanes on this machine (spawned processes) or on a Ray cluster.

A lane is a one-process pool with ``submit``/``shutdown``: local lanes are ``ProcessPoolExecutor(1)`` processes that
receive every experiment's :class:`~model_utils.run.plan.Plan` once, as they start (:func:`worker_init`); a Ray lane
is one actor, sent the plans once through the object store. Each trains with one TensorFlow thread, so the numbers
are those of a run in one process. Architectures defined in a notebook travel to the workers by value
(:func:`architecture_payloads`).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from ..config import Experiment
from ..results import RunResult
from .plan import Plan, empty_result
from .seed import run_and_write

BACKENDS = ("local", "ray")


def choose_backend(backend: str | None, address: str | None) -> tuple[str, str | None]:
    """The backend and Ray address to use: the arguments, else ``MSER_RAY_ADDRESS``, else the local pool."""
    if backend is None:
        env = os.environ.get("MSER_RAY_ADDRESS")
        backend, address = ("ray", address or env) if env else ("local", None)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "ray" and address in ("", "local"):
        address = None
    return backend, address


def default_workers(jobs: int) -> int:
    """Worker processes for ``jobs`` (experiment, seed) jobs when the user did not choose: one per core, never more
    than there are jobs. Each trains with one TensorFlow thread, so the numbers are those of ``workers=1``; one job
    runs in this process (no start-up cost)."""
    return max(1, min(int(jobs), os.cpu_count() or 1))


def local_lanes(workers: int, plans: Mapping[str, Plan]) -> list:
    """``workers`` single-process pools (spawned: never fork a TensorFlow process), one TensorFlow thread each,
    every one given ``plans`` once as it starts (:func:`worker_init`).

    The processes start here with SIGINT blocked, a mask they keep: Ctrl-C reaches the whole process group, and only
    this process answers it (by ending the workers, :func:`model_utils.run.schedule.end_workers`), so no worker prints a traceback."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    lanes = [ProcessPoolExecutor(1, mp_context=context, initializer=worker_init,
                                 initargs=(os.getpid(), plans))
             for _ in range(workers)]
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for lane in lanes:
            lane.submit(int)  # starts the lane's process now, while SIGINT is blocked
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return lanes


class RayLane:
    """One Ray actor (a worker process that keeps its traced models) behind the ``submit``/``shutdown`` of a
    one-process pool, so :func:`schedule` treats it as a local lane."""

    def __init__(self, ray, actor_class):
        self._ray, self._actor = ray, actor_class.remote()

    def submit(self, fn, *args):
        return self._actor.call.remote(fn, *args).future()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._ray.kill(self._actor)


class LaneActor:
    """The body of a Ray lane: one TensorFlow thread, then whatever :func:`schedule` sends."""

    def __init__(self):
        one_thread()
        signals_end_worker()

    def call(self, fn, *args):
        return fn(*args)


def ray_lanes(workers: int | None, address: str | None) -> list:
    """Lanes on a Ray cluster at ``address`` (None: a local instance with this machine's CPUs, no dashboard)."""
    try:
        import ray
    except ImportError:
        raise ValueError("backend 'ray' needs the ray extra: make setup-ray (or pip install .[ray])") from None
    if not ray.is_initialized():
        from ..machine.settings import forwarded

        env = forwarded()
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": env}, **({} if address else {"num_cpus": os.cpu_count()}))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actor = ray.remote(num_cpus=1)(LaneActor)
    return [RayLane(ray, actor) for _ in range(workers if workers and workers > 1 else cpus)]


def architecture_payloads(exps: Sequence[Experiment]) -> dict[str, bytes] | None:
    """For every architecture not built in, its registration pickled by value for the worker processes (cloudpickle
    pickles importable functions by reference and notebook ones by value); None (run in this process) if one
    cannot be pickled."""
    from ..architectures import ARCHITECTURES, is_built_in

    payloads = {}
    for e in exps:
        builder = ARCHITECTURES[e.arch]
        if is_built_in(builder) or e.arch in payloads:
            continue
        try:
            import cloudpickle

            payloads[e.arch] = cloudpickle.dumps((e.arch, builder, builder.fixed_modalities, builder.uses_speaker))
        except Exception as error:  # noqa: BLE001 — any pickling failure means: train here instead
            print(f"note: architecture {e.arch!r} cannot be sent to worker processes ({type(error).__name__}: "
                  f"{error}); running every experiment in this process instead (workers=1)", file=sys.stderr,
                  flush=True)
            return None
    return payloads


# The plans a local worker received when it started (worker_init), by experiment name.
_PLANS: dict[str, Plan] = {}


def run_job(payload: bytes | None, name: str, plans: Mapping[str, Plan] | None, seed: int, out: Path | None,
            overwrite: bool, command: str | None, tensorboard: Path | None = None) -> RunResult:
    """A worker's job: register a shipped architecture (if any), then train seed ``seed`` of experiment ``name``
    by its plan (``plans``, else those this worker received when it started) and write ``out/seed_<seed>/``; with
    ``tensorboard`` (the experiment's log folder), Keras' TensorBoard callback logs the seed's epochs there, on the
    worker's file system. Returns a RunResult holding that seed."""
    if payload is not None:
        import pickle

        from ..architectures import ARCHITECTURES, register_architecture

        arch, builder, modalities, speaker = pickle.loads(payload)  # our own bytes, from the parent process
        if arch not in ARCHITECTURES:
            register_architecture(arch, modalities=modalities, speaker=speaker)(builder)
    plan = (_PLANS if plans is None else plans)[name]
    run = empty_result(plan, command)
    run.seeds.append(run_and_write(plan, seed, run, out, overwrite=overwrite, verbose=0, tensorboard=tensorboard))
    return run


def one_thread() -> None:
    """One TensorFlow thread in this process, so workers do not fight over the cores."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def worker_init(parent: int, plans: Mapping[str, Plan]) -> None:
    """A local worker's initialiser: keeps ``plans`` (every experiment's :class:`Plan`, by name: the data arrive
    once per worker, not with every job); one TensorFlow thread; SIGTERM removes its staging folders and ends it;
    and it ends itself the same way if ``parent`` (the process that started it) is gone, so no worker trains on
    orphaned."""
    import threading

    _PLANS.clear()
    _PLANS.update(plans)
    signals_end_worker()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        end_this_worker()

    threading.Thread(target=watch, name="mser-parent-watch", daemon=True).start()
    one_thread()


def signals_end_worker() -> None:
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: end_this_worker())


def end_this_worker() -> None:
    from data_utils.fileio import remove_live_staging

    remove_live_staging()
    os._exit(143)
