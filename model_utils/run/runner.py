"""Run an experiment over seeds: the code behind `mser run`, the notebooks and the reports.

Protocol, for every experiment alike:

1. load the data under a label scheme and hold out a dialogue-level validation split from the training dialogues
   (fixed by ``split_seed``, the same for every model and seed); with ``cv='sessions'``, instead one fold per
   recording session, each scoring its held-out session with validation drawn from the other sessions
   (:mod:`model_utils.run.plan`);
2. standardise every modality on the training dialogues (``TrainConfig.standardize``, on by default);
3. for each seed: seed everything, build the model (:func:`model_utils.architectures.build_for`), train with early
   stopping on validation and restore the selected weights (:func:`model_utils.training.fit`); the scored
   dialogues are touched once, after training, to score real utterances only (:mod:`model_utils.run.seed`);
4. summarise accuracy, macro-F1, weighted-F1 and UAR as mean ± std over seeds, and the seed ensemble (posteriors
   averaged over the seeds) beside it.

A run directory can be resumed (:mod:`model_utils.run.resume`): rerunning the same command trains only the seeds
that are missing, and a different configuration is refused before any training. Several seeds or experiments train
in worker processes (:mod:`model_utils.run.lanes`, ordered by :mod:`model_utils.run.schedule`); each finished seed
prints a line on stderr (:mod:`model_utils.run.progress`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

from data_utils.dataset import ERCDataset
from data_utils.labels import DEFAULT_SCHEME

from ..config import CV_MODES, Experiment
from ..results import RunResult, SeedResult
from .lanes import architecture_payloads, choose_backend, local_lanes, ray_lanes
from .plan import (check_build, empty_result, load_data, make_plan, prepare_data, resolve_experiment,
                   resolve_experiments, run_dir_name, seed_list)
from .progress import SeedProgress, experiment_line, seed_line
from .resume import claimed, finish, prepare_out
from .schedule import schedule
from .seed import run_and_write
from .tensorboard_logs import event_folders

DEFAULT_SEEDS = (0, 1, 2)


__all__ = ["CV_MODES", "DEFAULT_SEEDS", "RunResult", "SeedResult", "prepare_data", "resolve_experiment",
           "run_dir_name", "run_experiment", "run_many", "run_seed"]


def run_experiment(experiment: str | Experiment, data: str | ERCDataset = "synthetic", *,
                   seeds: Iterable[int] = DEFAULT_SEEDS, epochs: int | None = None, scheme: str = DEFAULT_SCHEME,
                   out: str | Path | None = None, overwrite: bool = False, verbose: int = 1, split_seed: int = 0,
                   overrides=None, cv: str | None = None, command: str | None = None, workers: int = 1,
                   backend: str | None = None, address: str | None = None,
                   tensorboard: str | Path | None = None, metric: str | None = None) -> RunResult:
    """Train and evaluate ``experiment`` once per seed; write the run directory ``out`` if given.

    ``experiment``: a registered name or an :class:`Experiment`; ``overrides``: ``{"units": 32}`` or
    ``["units=32", "train.learning_rate=3e-4"]``. ``epochs`` caps training (early stopping decides). ``cv``:
    ``'sessions'`` for leave-one-session-out cross-validation over every dialogue, else the test split is scored.
    ``verbose``: 1 a line per seed, 2 also a line per epoch. ``out`` is resumable: complete seeds of the same
    configuration are reused, a different configuration is refused (``OutputExistsError``) unless ``overwrite``.
    ``workers`` > 1 trains the seeds in that many processes (see :func:`run_many`); the numbers are the same.
    ``tensorboard``: a folder for TensorBoard logs of every seed trained (see :func:`run_many`). ``metric``: what
    the run is judged by (see :func:`run_many`).
    """
    exp = resolve_experiment(experiment, overrides)
    seeds = seed_list(seeds, exp)
    out = Path(out) if out is not None else None
    board = event_folders(tensorboard, [exp], [out], cv, metric=metric)[exp.name]  # before the data are read
    if workers > 1 or choose_backend(backend, address)[0] == "ray":
        return _run_all([exp], data, {exp.name: out}, scheme=scheme, workers=workers, progress=False, seeds=seeds,
                        epochs=epochs, overwrite=overwrite, verbose=verbose, split_seed=split_seed, cv=cv,
                        command=command, backend=backend, address=address, boards={exp.name: board},
                        metric=metric)[exp.name]
    plan = make_plan(exp, data, scheme=scheme, split_seed=split_seed, epochs=epochs, cv=cv, metric=metric)
    check_build(plan)
    with claimed([out]):
        reused = prepare_out(out, plan, seeds, overwrite, verbose)
        run = empty_result(plan, command)
        todo = [s for s in seeds if s not in reused]
        for i, seed in enumerate(todo):
            run.seeds.append(run_and_write(plan, seed, run, out, overwrite=overwrite, verbose=verbose,
                                           progress=f"{i + 1}/{len(todo)}", tensorboard=board))
        return finish(run, reused, out)


def run_seed(experiment: str | Experiment, data: str | ERCDataset, seed: int, *, epochs: int | None = None,
             scheme: str = DEFAULT_SCHEME, out: Path | None = None, overwrite: bool = False, verbose: int = 1,
             split_seed: int = 0, overrides=None, cv: str | None = None, command: str | None = None,
             path: str | None = None, tensorboard: str | Path | None = None, metric: str | None = None) -> RunResult:
    """One seed of :func:`run_experiment` (a job of :func:`run_many`): a RunResult with that seed only; writes
    ``out/seed_<seed>/`` (not the summary) if ``out`` is given. ``path``: how the run names its data.
    ``tensorboard``: a folder for the seed's TensorBoard logs (see :func:`run_many`)."""
    exp = resolve_experiment(experiment, overrides)
    out = Path(out) if out else None
    board = event_folders(tensorboard, [exp], [out], cv, metric=metric)[exp.name]
    plan = make_plan(exp, data, scheme=scheme, split_seed=split_seed, epochs=epochs, cv=cv, path=path, metric=metric)
    run = empty_result(plan, command)
    run.seeds.append(run_and_write(plan, seed, run, out, overwrite=overwrite, verbose=verbose, tensorboard=board))
    return run


def run_many(experiments: Iterable[str | Experiment], data: str | ERCDataset = "synthetic", *,
             out_root: str | Path | None = None, scheme: str = DEFAULT_SCHEME, workers: int = 1,
             progress: bool = True, overrides=None, seeds: Iterable[int] = DEFAULT_SEEDS, epochs: int | None = None,
             overwrite: bool = False, verbose: int = 1, split_seed: int = 0, cv: str | None = None,
             command: str | None = None, backend: str | None = None, address: str | None = None,
             tensorboard: str | Path | None = None, metric: str | None = None) -> dict[str, RunResult]:
    """Run several experiments (names or :class:`Experiment` objects) on the same data; results by experiment
    name, in the order given. Run directories go under ``out_root`` (:func:`run_dir_name`). ``overrides``: a
    training setting applies to every experiment, a hyperparameter to those whose builder takes it, or a mapping
    by experiment name (:func:`~model_utils.run.plan.resolve_experiments`; one that fits nothing is refused).

    ``workers`` > 1 runs (experiment, seed) jobs in that many processes, each with one TensorFlow thread. Results
    are the same as with ``workers=1``, because this process trains with one thread too (``import model_utils``
    sets it: with more threads, oneDNN's convolutions give other last digits; the tests check it), and two workers
    on two cores train about 1.8 times as many models per hour. An architecture defined in a notebook or a function
    is shipped to the workers by value (cloudpickle); if that is impossible, everything runs in this process, with a
    note on stderr. From a script, call it under ``if __name__ == "__main__":``
    (workers are spawned, as Python's multiprocessing requires). ``progress`` prints a line to stdout as each
    experiment finishes (``make reproduce`` relays these lines).

    ``backend='ray'`` sends the same jobs to a Ray cluster instead (the ``ray`` extra): ``address`` is the
    cluster's (``'auto'`` for one this machine belongs to; None starts a local instance), and ``workers`` lanes
    (default: the cluster's CPUs) each run in one Ray actor with one TensorFlow thread. Results, progress lines and
    run directories are those of the local pool. Without ``backend``, ``MSER_RAY_ADDRESS`` in the environment
    chooses Ray at that address (how ``mser reproduce --ray`` reaches the notebooks).

    ``tensorboard`` (off by default): a folder where Keras' TensorBoard callback logs every seed trained, per epoch
    (training loss; validation loss, accuracy, macro-F1, weighted-F1, UAR), into ``<tensorboard>/<run name>/
    seed_<s>/`` (``…/seed_<s>/fold_<session>/`` per fold with ``cv``; :mod:`model_utils.run.tensorboard_logs`),
    on the file system of the process that trains it (Ray: the node's). The numbers do not change. It may hold
    earlier logs (nothing is removed); checked before the data are read: ``ValueError`` without the tensorboard
    package (``make setup-tensorboard``), ``OutputPathError`` for a folder that cannot be written or whose logs would
    go into a run directory.

    ``metric`` (one of :data:`~model_utils.metrics.METRICS`; default: the one the data declare, else macro-F1) is
    what the runs are judged by: epochs are selected on it, the ``'auto'`` loss weighting follows it (balanced for
    macro-F1 and UAR, none for weighted-F1 and accuracy; an explicit ``train.class_weight`` wins), and it heads the
    runs' reports and model cards; a metric other than macro-F1 marks the run directories' names.
    """
    exps = resolve_experiments(experiments, overrides)
    outs = {e.name: None if out_root is None else Path(out_root) / run_dir_name(e, cv, metric) for e in exps}
    boards = event_folders(tensorboard, exps, outs.values(), cv, metric=metric)  # before the data are read
    return _run_all(exps, data, outs, scheme=scheme, workers=workers, progress=progress, seeds=seeds,
                    epochs=epochs, overwrite=overwrite, verbose=verbose, split_seed=split_seed, cv=cv,
                    command=command, backend=backend, address=address, boards=boards, metric=metric)


def _run_all(exps: Sequence[Experiment], data: str | ERCDataset, outs: Mapping[str, Path | None], *, scheme: str,
             workers: int, progress: bool, seeds: Iterable[int], epochs: int | None, overwrite: bool, verbose: int,
             split_seed: int, cv: str | None, command: str | None, backend: str | None = None,
             address: str | None = None, boards: Mapping[str, Path | None] | None = None,
             metric: str | None = None) -> dict[str, RunResult]:
    """:func:`run_many` with the run directory of every experiment given (``outs``, by name), and its
    TensorBoard log folder (``boards``, by name; none if None)."""
    names = [e.name for e in exps]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"experiments {twice} appear twice; give derived experiments distinct names")
    ds, path = load_data(data, scheme)
    seeds = seed_list(seeds, exps[0]) if exps else []
    shared: dict = {}  # experiments with the same folds share their datasets
    plans = {e.name: make_plan(e, ds, scheme=scheme, split_seed=split_seed, epochs=epochs, cv=cv, path=path,
                               shared=shared, metric=metric) for e in exps}
    for e in exps:
        check_build(plans[e.name])
    with claimed(outs.values()):
        return _run_claimed(exps, plans, outs, seeds=seeds, workers=workers, progress=progress, overwrite=overwrite,
                            verbose=verbose, cv=cv, command=command, backend=backend, address=address,
                            boards=boards or {})


def _run_claimed(exps, plans, outs, *, seeds, workers, progress, overwrite, verbose, cv, command, backend,
                 address, boards) -> dict[str, RunResult]:
    """The rest of :func:`_run_all`, holding the lock of every run directory."""
    names = [e.name for e in exps]
    boards = {n: boards.get(n) for n in names}
    reused = {n: prepare_out(outs[n], plans[n], seeds, overwrite, verbose) for n in names}
    runs = {n: empty_result(plans[n], command) for n in names}
    results: dict[str, RunResult] = {}

    def finished(name: str) -> None:
        result = results[name] = finish(runs[name], reused[name], outs[name])
        if progress:
            print(experiment_line(len(results), len(names), name, result, cv=cv), flush=True)

    todo = {n: [s for s in seeds if s not in reused[n]] for n in names}
    backend, address = choose_backend(backend, address)
    payloads = architecture_payloads(exps) if workers > 1 or backend == "ray" else None
    if payloads is None:
        for n in names:
            for i, seed in enumerate(todo[n]):
                runs[n].seeds.append(run_and_write(plans[n], seed, runs[n], outs[n], overwrite=overwrite,
                                                   verbose=verbose, progress=f"{i + 1}/{len(todo[n])}",
                                                   tensorboard=boards[n]))
            finished(n)
        return {n: results[n] for n in names}

    for n in names:
        if not todo[n]:
            finished(n)
    wanted = {n: plans[n] for n in names if todo[n]}  # each worker receives the plans once, not with every job
    if backend == "ray":  # through the object store once; Ray hands each job the plans themselves
        import ray

        lanes = ray_lanes(workers, address)
        shipped = ray.put(wanted)
    else:
        lanes, shipped = local_lanes(workers, wanted), None
    jobs = {n: [(payloads.get(e.arch), n, shipped, seed, outs[n], overwrite, command, boards[n]) for seed in todo[n]]
            for e in exps for n in [e.name] if todo[n]}
    with SeedProgress(sum(map(len, todo.values())), verbose=verbose) as seeds_done:
        for name, result in schedule(jobs, lanes):
            runs[name].seeds.extend(result.seeds)
            for trained in result.seeds:
                seeds_done.done(seed_line(name, trained, plans[name].document["metric"]))
            if len(runs[name].seeds) == len(todo[name]):
                finished(name)
    return {n: results[n] for n in names}
