"""Run an experiment over seeds: the code behind `mser run`, the notebooks and the reports.

Protocol, for every experiment alike:

1. load the data under a label scheme and hold out a dialogue-level validation split from the training dialogues
   (fixed by ``split_seed``, the same for every model and seed); with ``cv='sessions'``, instead one fold per
   recording session, each scoring its held-out session with validation drawn from the other sessions
   (:func:`data_utils.dataset.session_folds`);
2. standardise every modality on the training dialogues (``TrainConfig.standardize``, on by default);
3. for each seed: seed everything, build the model (:func:`model_utils.architectures.build_for`), train with early
   stopping on validation and restore the selected weights (:func:`model_utils.training.fit`); the scored
   dialogues are touched once, after training, to score real utterances only;
4. summarise accuracy, macro-F1, weighted-F1 and UAR as mean ± std over seeds, and the seed ensemble (posteriors
   averaged over the seeds) beside it.

A run directory (:mod:`model_utils.results`) can be resumed: rerunning the same command trains only the seeds
that are missing, and a different configuration is refused before any training.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from data_utils.corpus import SPLITS, DataWarning
from data_utils.dataset import (ERCDataset, check_scored, class_warnings, load_dataset, session_folds, standardize,
                                with_validation_split)
from data_utils.fileio import STAGING_MARK, OutputExistsError, release_staging, staging_dir, write_json
from data_utils.identity import describe_source
from data_utils.labels import DEFAULT_SCHEME

from . import metrics, rundir
from .config import CV_MODES, MAX_SEEDS, TRAIN_SETTINGS_ADDED, Experiment, TrainConfig
from .experiments import EXPERIMENTS, get_experiment
from .results import (CONFIG, SUMMARY, FoldResult, RunResult, SeedResult, git_commit, provenance,
                      read_config, read_seed, write_seed, write_summary)
from .rundir import MODEL_STAGING_PREFIX

DEFAULT_SEEDS = (0, 1, 2)

__all__ = ["CV_MODES", "DEFAULT_SEEDS", "RunResult", "SeedResult", "prepare_data", "resolve_experiment",
           "run_dir_name", "run_experiment", "run_many", "run_seed"]


def resolve_experiment(experiment: str | Experiment, overrides=None) -> Experiment:
    """A registered name or an :class:`Experiment`, checked against the architecture registry
    (:func:`model_utils.registry.check_experiment`: where an experiment is used, as scikit-learn checks parameters
    at ``fit``), with ``overrides`` applied (``{"units": 32}`` or ``["units=32", "train.learning_rate=3e-4"]``;
    :meth:`Experiment.derive`). Raises ``KeyError`` for an unknown name, ``ValueError`` for what does not fit."""
    from .architectures import check_experiment, default_hparams

    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    if not isinstance(exp, Experiment):
        raise TypeError(f"expected an experiment name or an Experiment, got {type(experiment).__name__}")
    return check_experiment(exp).derive(overrides, default_hparams(exp.arch))


def run_dir_name(experiment: Experiment, cv: str | None = None) -> str:
    """The folder a run goes into by default: the experiment's name, overrides as ``--key=value``, CV marked."""
    name = experiment.base + "".join(f"--{k}={v}" for k, v in sorted(experiment.overrides.items()))
    name = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in name)
    return name + (f"--cv-{cv}" if cv else "")


def _check_modalities(experiment: Experiment, ds: ERCDataset) -> None:
    missing = [m for m in experiment.modalities if m not in ds.modalities]
    if missing:
        fit = [e.name for e in EXPERIMENTS.values() if set(e.modalities) <= set(ds.modalities)]
        raise ValueError(
            f"experiment {experiment.name!r} needs {', '.join(missing)} features, which {ds.source} does not "
            f"have (it has {', '.join(ds.modalities)}); experiments these data fit: {', '.join(fit) or 'none'}"
        )


def _splits(ds: ERCDataset, config: TrainConfig) -> tuple[ERCDataset, ERCDataset, ERCDataset]:
    if config.standardize:
        ds = standardize(ds)
    return ds.subset("train"), ds.subset("valid"), ds.subset("test")


def prepare_data(experiment: str | Experiment, data: str | ERCDataset = "synthetic", *,
                 scheme: str = DEFAULT_SCHEME, split_seed: int = 0, config: TrainConfig | None = None
                 ) -> tuple[ERCDataset, ERCDataset, ERCDataset]:
    """Train, validation and test sets for ``experiment`` under the protocol above (standardised on the training
    dialogues unless its training config says otherwise)."""
    exp = resolve_experiment(experiment)
    ds = data if isinstance(data, ERCDataset) else load_dataset(data, scheme=scheme)
    _check_modalities(exp, ds)
    return _splits(with_validation_split(ds, seed=split_seed), config or exp.train_config())


# ------------------------------------------------------------------------------------------------ a run's plan

@dataclass
class _Plan:
    """What every seed of a run shares: the experiment, its training config, the folds (one for a plain run) and the
    scored set, and the ``config.json`` document that identifies the run."""

    experiment: Experiment
    config: TrainConfig
    folds: list[tuple[str, tuple[ERCDataset, ERCDataset, ERCDataset]]]
    scored: ERCDataset
    document: dict
    data: dict


def _load(data: str | ERCDataset, scheme: str) -> tuple[ERCDataset, str]:
    """The dataset, and how runs name it: the name the user gave (a preset, a path), or the dataset's source."""
    if isinstance(data, ERCDataset):
        return data, data.source
    return load_dataset(data, scheme=scheme), str(data)


def _plan(experiment: Experiment, data: str | ERCDataset, *, scheme: str, split_seed: int, epochs: int | None,
          cv: str | None, path: str | None = None) -> _Plan:
    from .architectures import architecture_code, default_hparams

    ds, name = _load(data, scheme)
    _check_modalities(experiment, ds)
    for message in class_warnings(ds, split_seed, test=cv is None):  # once per message: Python's warning filter
        warnings.warn(message, DataWarning, stacklevel=2)
    config = experiment.train_config(epochs=epochs)
    info = {"path": path or name, "synthetic": bool(ds.synthetic), "label_scheme": ds.scheme.name,
            **describe_source(ds.source, synthetic=ds.synthetic, dialogues=len(ds))}
    if cv is None:
        held = with_validation_split(ds, seed=split_seed)
        check_scored(held, SPLITS)  # before anything trains
        folds = [("", _splits(held, config))]
        scored = folds[0][1][2]
        evaluation = {"kind": "test-split", "validation_dialogues": list(folds[0][1][1].dialogue_ids)}
    else:
        if cv not in CV_MODES:
            raise ValueError(f"unknown cross-validation {cv!r}; choose one of {', '.join(CV_MODES)}")
        pool = session_folds(ds, within=CV_MODES[cv], seed=split_seed)
        folds = [(s, _splits(fold, config)) for s, fold in pool]
        scored = pool[0][1].subset(sorted(d for _, fold in pool for d in fold.splits["test"]))
        evaluation = {"kind": f"cv-{cv}", "within": list(CV_MODES[cv]),
                      "folds": [{"session": s, "test_dialogues": len(split[2]),
                                 "validation_dialogues": list(split[1].dialogue_ids)} for s, split in folds]}
    hparams = {**default_hparams(experiment.arch), **experiment.hparams}
    default_epochs = experiment.train_config().epochs
    differs = sorted(experiment.overrides) + (["epochs"] if config.epochs != default_epochs else [])
    document = {
        "experiment": experiment.record(),
        "architecture_code": architecture_code(experiment.arch),
        "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in hparams.items()},
        "train_config": {k: v for k, v in vars(config).items()},
        "epochs_cap": config.epochs,
        "data": info,
        "split_seed": split_seed,
        "evaluation": evaluation,
        "differs_from_defaults": differs,
    }
    return _Plan(experiment, config, folds, scored, document, info)


def _fingerprint(document: Mapping) -> dict:
    """The parts of a ``config.json`` that decide the numbers: the architecture (and its builder's code), the
    modalities, every hyperparameter and training setting, the data's content and label scheme, the split seed and
    what is scored. Not the names, descriptions or where the data file sits."""
    exp, data, evaluation = document.get("experiment", {}), document.get("data", {}), document.get("evaluation", {})
    train = document.get("train_config")
    if isinstance(train, Mapping):  # a run recorded before a setting existed trained as its neutral default does
        train = {**TRAIN_SETTINGS_ADDED, **train}
    return copy.deepcopy({
        "architecture": exp.get("arch"), "architecture_code": document.get("architecture_code"),
        "modalities": exp.get("modalities"), "hparams": document.get("hparams"),
        "train_config": train,
        "data": {"sha256": data.get("sha256"), "label_scheme": data.get("label_scheme")},
        "split_seed": document.get("split_seed"),
        "evaluation": {"kind": evaluation.get("kind"), "within": evaluation.get("within")},
    })


def _empty_result(plan: _Plan, command: str | None) -> RunResult:
    scored = plan.scored
    return RunResult(plan.experiment, dict(plan.data), scored.class_names, scored.labels, scored.mask,
                     scored.dialogue_ids, config=plan.document, provenance=provenance(command), test=scored)


# ------------------------------------------------------------------------------------------------ training

def _train_seed(plan: _Plan, seed: int, *, verbose: int, staging: Path | None, progress: str = ""
                ) -> SeedResult:
    """Seed everything, build, fit with selection on validation, score the held-out dialogues once per fold; the
    trained models go to ``staging`` (if given) as ``model.keras`` or ``fold_<session>.keras``."""
    import keras

    from . import training
    from .architectures import build_for

    exp, config, scored = plan.experiment, plan.config, plan.scored
    where = "SYNTHETIC data" if plan.data["synthetic"] else plan.data["path"]
    _log(verbose, f"[{exp.name}] seed {seed}{f' ({progress})' if progress else ''} on {where}")
    probabilities = np.zeros(scored.labels.shape + (scored.num_classes,), np.float32)
    row = {d: i for i, d in enumerate(scored.dialogue_ids)}
    folds, fitted = [], None
    timing = {"started": time.time(), "pid": os.getpid(), "build": 0.0, "steps": 0.0, "first_epoch_steps": 0.0,
              "validation": 0.0, "test_prediction": 0.0, "epochs": 0, "reused_trace": False,
              "clear_session": 0.0, "fit_other": 0.0, "save": 0.0}
    for session, (train, valid, test) in plan.folds:
        clock = time.perf_counter()
        keras.backend.clear_session()  # free the previous model's graph: many runs share one process
        training.set_seed(seed)
        timing["clear_session"] += time.perf_counter() - clock
        clock = time.perf_counter()
        if REUSE_TRACES:
            reused = traced_models().reused
            model = traced_models().model(_trace_key(exp, train, config), lambda: build_for(exp, train), config)
            timing["reused_trace"] = traced_models().reused > reused
        else:
            model = build_for(exp, train)
            training.compile_model(model, config)
        timing["build"] += time.perf_counter() - clock
        fitted = training.fit(model, train, valid, exp.modalities, config, verbose=verbose > 1, compile=False)
        timing["steps"] += sum(fitted.step_seconds)
        timing["first_epoch_steps"] += fitted.step_seconds[0] if fitted.step_seconds else 0.0
        timing["validation"] += sum(fitted.validation_seconds)
        timing["epochs"] += fitted.epochs_run
        timing["fit_other"] += fitted.seconds - sum(fitted.step_seconds) - sum(fitted.validation_seconds)
        clock = time.perf_counter()
        probs = training.predict(model, test, exp.modalities)
        training.check_finite(model, probs[test.mask])
        timing["test_prediction"] += time.perf_counter() - clock
        probabilities[[row[d] for d in test.dialogue_ids]] = probs
        if staging is not None:
            clock = time.perf_counter()
            model.save(staging / (f"fold_{session}.keras" if session else "model.keras"))
            timing["save"] += time.perf_counter() - clock
        if session:
            pred = np.where(test.mask, probs.argmax(-1), -1)
            folds.append(FoldResult(session, fitted.history, fitted.best_epoch, fitted.epochs_run, fitted.seconds,
                                    fitted.validation, metrics.evaluate(test.labels, pred, test.mask,
                                                                        test.class_names),
                                    list(valid.dialogue_ids)))
            _log(verbose, f"[{exp.name}] seed {seed}, fold {session}: macro-F1 {folds[-1].metrics['macro_f1']:.4f}")
    probabilities *= scored.mask[..., None]
    pred = np.where(scored.mask, probabilities.argmax(-1), -1)
    scores = metrics.evaluate(scored.labels, pred, scored.mask, scored.class_names)
    from .environment import compute_device, tensorflow_threads

    timing["ended"] = time.time()
    timing = {k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()}
    trained = {**{k: v for k, v in provenance().items() if k in ("git_commit", "started")},
               "device": compute_device(), "tensorflow_threads": tensorflow_threads(), "timing": timing}
    if folds:
        result = SeedResult(seed, scores, [], 0, sum(f.epochs_run for f in folds), sum(f.seconds for f in folds),
                            pred, probabilities,
                            {m: float(np.mean([f.validation[m] for f in folds])) for m in metrics.METRICS}, folds,
                            trained)
    else:
        result = SeedResult(seed, scores, fitted.history, fitted.best_epoch, fitted.epochs_run, fitted.seconds,
                            pred, probabilities, fitted.validation, provenance=trained)
    selected = (f"best epoch {result.best_epoch}" if not folds else f"{len(folds)} folds")
    _log(verbose, f"[{exp.name}] seed {seed}: accuracy {scores['accuracy']:.4f}, macro-F1 "
                  f"{scores['macro_f1']:.4f} ({selected}, {result.train_seconds:.1f} s)")
    return result


# The models this process has traced: a later seed (or fold) of the same experiment reuses one, re-initialised to
# exactly the state a fresh build has (training.TracedModels). MSER_REUSE_TRACES=0 builds and traces every model anew
# (the same numbers, slower; for profiling).
REUSE_TRACES = os.environ.get("MSER_REUSE_TRACES", "1") != "0"


@functools.lru_cache(maxsize=1)
def traced_models():
    """This process's :class:`training.TracedModels` (made on first use: it imports Keras)."""
    from .training import TracedModels

    return TracedModels()


def _trace_key(exp: Experiment, train: ERCDataset, config: TrainConfig) -> tuple:
    """What shapes an experiment's traced graph beyond its variables: the builder (the function object, so a
    redefined architecture never reuses the old one's graph), hyperparameters, modalities, input widths, classes,
    speaker rows and the whole training config (optimizer and loss constants)."""
    from .architectures import get_builder, speaker_rows

    builder = get_builder(exp.arch)
    rows = speaker_rows(train, exp.hparams.get("speaker_identity", "party")) if builder.uses_speaker else 0
    return (exp.arch, id(builder), repr(sorted(exp.hparams.items())), exp.modalities,
            tuple(sorted(train.dims.items())), train.num_classes, rows, repr(config))


def _check_build(plan: _Plan) -> None:
    """Build the model once before anything is written or trained, so a bad hyperparameter value or a builder
    that breaks the output contract fails at once, not after a run folder is claimed."""
    import keras

    from .architectures import build_for

    keras.backend.clear_session()
    try:
        build_for(plan.experiment, plan.folds[0][1][0])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        detail = repr(e.args[0]) if isinstance(e, KeyError) and e.args else " ".join(str(e).split())[:300]
        given = ", ".join(f"{k}={v!r}" for k, v in sorted(plan.experiment.hparams.items()))
        raise ValueError(f"experiment {plan.experiment.name!r} cannot be built ({type(e).__name__}: {detail}); its "
                         f"hyperparameters: {given or 'the defaults'}") from e
    finally:
        keras.backend.clear_session()


def _run_and_write(plan: _Plan, seed: int, run: RunResult, out: Path | None, *, overwrite: bool, verbose: int,
                   progress: str = "") -> SeedResult:
    if out is None:
        return _train_seed(plan, seed, verbose=verbose, staging=None, progress=progress)
    staging = staging_dir(out, prefix=MODEL_STAGING_PREFIX)
    try:
        result = _train_seed(plan, seed, verbose=verbose, staging=staging, progress=progress)

        def move_models(folder: Path) -> None:
            for path in staging.iterdir():
                if path.name != STAGING_MARK:
                    shutil.move(str(path), folder / path.name)

        write_seed(out, run, result, save_models=move_models, overwrite=overwrite)
    finally:
        release_staging(staging)
    return result


# ------------------------------------------------------------------------------------------------ run directories

def _prepare_out(out: Path | None, plan: _Plan, seeds: Sequence[int], overwrite: bool, verbose: int
                 ) -> dict[int, SeedResult]:
    """Make ``out`` ready for ``seeds`` of ``plan`` (call it holding ``out``'s lock, :func:`rundir.claim`) and return
    those of ``seeds`` whose complete folders it already holds for the same configuration (reused, not retrained).

    ``out`` must be new, empty, or a run directory holding only what the suite wrote (:func:`rundir.check_ours`).
    A different configuration is refused while the folder holds complete seeds of it, unless ``overwrite``, which
    then removes them; a folder with none (a run that failed before its first seed) is simply taken over. With the
    same configuration ``overwrite`` removes the folders of ``seeds``, which are retrained. Seed folders of other
    seeds stay where they are, outside this run's summary.
    """
    if out is None:
        return {}
    found = rundir.check_ours(out)
    rundir.remove_leftovers(found)  # staging folders of a run that was killed mid-seed (we hold the lock)
    recorded = read_config(out) if found.config else None
    folders = dict(found.seeds)
    if recorded is None and (folders or (out / SUMMARY).exists()):
        if not overwrite:
            raise OutputExistsError(f"{out} holds a run without {CONFIG} (from an older version); refusing to "
                                    "overwrite it (pass --force to replace it)")
        remove = list(folders)
    elif recorded is not None and _fingerprint(recorded) != _fingerprint(plan.document):
        if folders and not overwrite:
            changed = _differences(_fingerprint(recorded), _fingerprint(plan.document))
            raise OutputExistsError(f"{out} holds seeds {sorted(folders)} of a different configuration "
                                    f"({'; '.join(changed[:4])}); refusing to mix them: choose another --out, or "
                                    "pass --force to replace them")
        remove = list(folders)
    else:
        remove = [s for s in seeds if s in folders] if overwrite else []
    for s in remove:
        rundir.remove_seed(folders.pop(s))
    if found.config:
        (out / SUMMARY).unlink(missing_ok=True)  # rewritten when this run ends
    write_json(out / CONFIG, plan.document, overwrite=True)
    reused = {s: read_seed(folders[s])[0] for s in seeds if s in folders}
    name = plan.experiment.name
    if reused:
        _log(verbose, f"[{name}] {out}: reusing the complete seed(s) {sorted(reused)} of the same configuration")
        commits = {s.provenance.get("git_commit") for s in reused.values()} - {None, git_commit()}
        if commits:
            _log(verbose, f"[{name}] note: reused seeds were trained at commit(s) {sorted(commits)}, not at the "
                          f"current {git_commit()} (pass --force to retrain them)")
    others = sorted(set(folders) - set(seeds))
    if others:
        _log(verbose, f"[{name}] {out}: seed folder(s) {others} stay, outside this run's summary")
    return reused


@contextlib.contextmanager
def _claimed(outs: Iterable[Path | None]):
    """Hold the lock of every run directory in ``outs`` (None: not written) while the block runs."""
    outs = [out for out in outs if out is not None]
    for out in outs:
        rundir.check_ours(out)  # before the lock file is written into a folder that is not ours
    with contextlib.ExitStack() as stack:
        for out in outs:
            stack.enter_context(rundir.claim(out))
        yield


def _differences(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    found = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            found += _differences(x, y, f"{prefix}{key}.")
        elif x != y:
            found.append(f"{prefix}{key}: {_short(x)} there, {_short(y)} now")
    return found


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finish(run: RunResult, reused: Mapping[int, SeedResult], out: Path | None) -> RunResult:
    run.seeds = sorted([*run.seeds, *(s for k, s in reused.items() if k not in {x.seed for x in run.seeds})],
                       key=lambda s: s.seed)
    if out is not None:
        write_summary(out, run)
    return run


# ------------------------------------------------------------------------------------------------ public runners

def run_experiment(experiment: str | Experiment, data: str | ERCDataset = "synthetic", *,
                   seeds: Iterable[int] = DEFAULT_SEEDS, epochs: int | None = None, scheme: str = DEFAULT_SCHEME,
                   out: str | Path | None = None, overwrite: bool = False, verbose: int = 1, split_seed: int = 0,
                   overrides=None, cv: str | None = None, command: str | None = None, workers: int = 1,
                   backend: str | None = None, address: str | None = None) -> RunResult:
    """Train and evaluate ``experiment`` once per seed; write the run directory ``out`` if given.

    ``experiment``: a registered name or an :class:`Experiment`; ``overrides``: ``{"units": 32}`` or
    ``["units=32", "train.learning_rate=3e-4"]``. ``epochs`` caps training (early stopping decides). ``cv``:
    ``'sessions'`` for leave-one-session-out cross-validation over every dialogue, else the test split is scored.
    ``verbose``: 1 a line per seed, 2 also a line per epoch. ``out`` is resumable: complete seeds of the same
    configuration are reused, a different configuration is refused (``OutputExistsError``) unless ``overwrite``.
    ``workers`` > 1 trains the seeds in that many processes (see :func:`run_many`); the numbers are the same.
    """
    exp = resolve_experiment(experiment, overrides)
    seeds = _seed_list(seeds, exp)
    out = Path(out) if out is not None else None
    if workers > 1 or _backend(backend, address)[0] == "ray":
        return _run_all([exp], data, {exp.name: out}, scheme=scheme, workers=workers, progress=False, seeds=seeds,
                        epochs=epochs, overwrite=overwrite, verbose=verbose, split_seed=split_seed, cv=cv,
                        command=command, backend=backend, address=address)[exp.name]
    plan = _plan(exp, data, scheme=scheme, split_seed=split_seed, epochs=epochs, cv=cv)
    _check_build(plan)
    with _claimed([out]):
        reused = _prepare_out(out, plan, seeds, overwrite, verbose)
        run = _empty_result(plan, command)
        todo = [s for s in seeds if s not in reused]
        for i, seed in enumerate(todo):
            run.seeds.append(_run_and_write(plan, seed, run, out, overwrite=overwrite, verbose=verbose,
                                            progress=f"{i + 1}/{len(todo)}"))
        return _finish(run, reused, out)


def run_seed(experiment: str | Experiment, data: str | ERCDataset, seed: int, *, epochs: int | None = None,
             scheme: str = DEFAULT_SCHEME, out: Path | None = None, overwrite: bool = False, verbose: int = 1,
             split_seed: int = 0, overrides=None, cv: str | None = None, command: str | None = None,
             path: str | None = None) -> RunResult:
    """One seed of :func:`run_experiment` (a job of :func:`run_many`): a RunResult with that seed only; writes
    ``out/seed_<seed>/`` (not the summary) if ``out`` is given. ``path``: how the run names its data."""
    exp = resolve_experiment(experiment, overrides)
    plan = _plan(exp, data, scheme=scheme, split_seed=split_seed, epochs=epochs, cv=cv, path=path)
    run = _empty_result(plan, command)
    run.seeds.append(_run_and_write(plan, seed, run, Path(out) if out else None, overwrite=overwrite,
                                    verbose=verbose))
    return run


def _seed_list(seeds: Iterable[int], exp: Experiment) -> list[int]:
    """``seeds`` as a list of distinct seeds in 0 … 2**32 - 1, at most :data:`MAX_SEEDS` of them (checked before the
    list is built: ``range(10**11)`` is refused at once); ``ValueError`` otherwise."""
    if isinstance(seeds, range) and len(seeds) > MAX_SEEDS:
        raise ValueError(f"{exp.name}: {len(seeds)} seeds asked for; at most {MAX_SEEDS} are run")
    seeds = [int(s) for s in itertools.islice(seeds, MAX_SEEDS + 1)]
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{exp.name}: more than {MAX_SEEDS} seeds asked for; at most {MAX_SEEDS} are run")
    if not seeds:
        raise ValueError(f"{exp.name}: no seeds to run")
    if any(not 0 <= s < 2 ** 32 for s in seeds):
        raise ValueError(f"{exp.name}: seeds must be in 0 … 2**32 - 1, got {_short(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{exp.name}: seeds {_short(seeds)} repeat a seed")
    return seeds


def _log(verbose: int, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def run_many(experiments: Iterable[str | Experiment], data: str | ERCDataset = "synthetic", *,
             out_root: str | Path | None = None, scheme: str = DEFAULT_SCHEME, workers: int = 1,
             progress: bool = True, overrides=None, seeds: Iterable[int] = DEFAULT_SEEDS, epochs: int | None = None,
             overwrite: bool = False, verbose: int = 1, split_seed: int = 0, cv: str | None = None,
             command: str | None = None, backend: str | None = None, address: str | None = None
             ) -> dict[str, RunResult]:
    """Run several experiments (names or :class:`Experiment` objects) on the same data; results by experiment
    name, in the order given. Run directories go under ``out_root`` (:func:`run_dir_name`); ``overrides`` apply to
    every experiment (a hyperparameter key must fit every architecture).

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
    """
    exps = [resolve_experiment(e, overrides) for e in experiments]
    outs = {e.name: None if out_root is None else Path(out_root) / run_dir_name(e, cv) for e in exps}
    return _run_all(exps, data, outs, scheme=scheme, workers=workers, progress=progress, seeds=seeds,
                    epochs=epochs, overwrite=overwrite, verbose=verbose, split_seed=split_seed, cv=cv,
                    command=command, backend=backend, address=address)


def _run_all(exps: Sequence[Experiment], data: str | ERCDataset, outs: Mapping[str, Path | None], *, scheme: str,
             workers: int, progress: bool, seeds: Iterable[int], epochs: int | None, overwrite: bool, verbose: int,
             split_seed: int, cv: str | None, command: str | None, backend: str | None = None,
             address: str | None = None) -> dict[str, RunResult]:
    """:func:`run_many` with the run directory of every experiment given (``outs``, by name)."""
    names = [e.name for e in exps]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"experiments {twice} appear twice; give derived experiments distinct names")
    ds, path = _load(data, scheme)
    seeds = _seed_list(seeds, exps[0]) if exps else []
    plans = {e.name: _plan(e, ds, scheme=scheme, split_seed=split_seed, epochs=epochs, cv=cv, path=path)
             for e in exps}
    for e in exps:
        _check_build(plans[e.name])
    with _claimed(outs.values()):
        return _run_claimed(exps, ds, path, plans, outs, seeds=seeds, workers=workers, progress=progress,
                            epochs=epochs, scheme=scheme, overwrite=overwrite, verbose=verbose, split_seed=split_seed,
                            cv=cv, command=command, backend=backend, address=address)


def _run_claimed(exps, ds, path, plans, outs, *, seeds, workers, progress, epochs, scheme, overwrite, verbose,
                 split_seed, cv, command, backend, address) -> dict[str, RunResult]:
    """The rest of :func:`_run_all`, holding the lock of every run directory."""
    names = [e.name for e in exps]
    reused = {n: _prepare_out(outs[n], plans[n], seeds, overwrite, verbose) for n in names}
    runs = {n: _empty_result(plans[n], command) for n in names}
    results: dict[str, RunResult] = {}

    def finished(name: str) -> None:
        result = results[name] = _finish(runs[name], reused[name], outs[name])
        if progress:
            scored = "test" if cv is None else f"CV ({cv})"
            print(f"[{len(results)}/{len(names)}] {name}: {scored} macro-F1 {result.mean('macro_f1'):.4f} (mean of "
                  f"{len(result.seeds)} seeds; {sum(s.train_seconds for s in result.seeds):.0f} s of training)",
                  flush=True)

    todo = {n: [s for s in seeds if s not in reused[n]] for n in names}
    backend, address = _backend(backend, address)
    payloads = _architecture_payloads(exps) if workers > 1 or backend == "ray" else None
    if payloads is None:
        for n in names:
            for i, seed in enumerate(todo[n]):
                runs[n].seeds.append(_run_and_write(plans[n], seed, runs[n], outs[n], overwrite=overwrite,
                                                    verbose=verbose, progress=f"{i + 1}/{len(todo[n])}"))
            finished(n)
        return {n: results[n] for n in names}

    for n in names:
        if not todo[n]:
            finished(n)
    options = dict(epochs=epochs, scheme=scheme, overwrite=overwrite, verbose=0, split_seed=split_seed, cv=cv,
                   path=path)
    lanes = _ray_lanes(workers, address) if backend == "ray" else _local_lanes(workers)
    shipped = ds
    if backend == "ray":  # through the object store once; Ray hands each job the dataset itself
        import ray

        shipped = ray.put(ds)
    jobs = {n: [(payloads.get(e.arch), e, shipped, seed, outs[n], options) for seed in todo[n]]
            for e in exps for n in [e.name] if todo[n]}
    for name, result in _schedule(jobs, lanes):
        runs[name].seeds.extend(result.seeds)
        if len(runs[name].seeds) == len(todo[name]):
            finished(name)
    return {n: results[n] for n in names}


# ------------------------------------------------------------------------------------------------ scheduling

# Seconds one seed of each built-in experiment took on the synthetic data, tracing included (2-core machine, one
# TensorFlow thread per worker; `make reproduce`'s reports/profile.md of 2026-12-01). Only the order of jobs depends
# on them, never a result: the longest experiments start first, so no worker idles at the end while another
# finishes a long one (with only the eight longest listed, text-context counted as 30 s and ran last, and one worker
# waited 53 s for it). An experiment not listed counts as DEFAULT_SECONDS_PER_SEED.
SECONDS_PER_SEED = {"transformer-all": 108, "transformer-visual": 102, "multimodal-seed-tfaudio": 101,
                    "multimodal-seed": 65, "text-context": 47, "rnn-all": 36, "timnet-text": 36,
                    "late-fusion-repr": 31, "multimodal-lstm": 29, "text-bilstm": 29, "timnet-all": 29,
                    "timnet-audio": 29, "timnet-visual": 29, "multimodal-no-modality-dropout": 27, "rnn-visual": 27,
                    "rnn-audio": 25, "late-fusion-decision": 24, "multimodal": 24, "rnn-text": 24,
                    "multimodal-no-speaker": 23, "multimodal-no-utterance-fusion": 23,
                    "multimodal-no-standardize": 21, "multimodal-no-xattn": 18, "multimodal-no-dropout": 16,
                    "early-fusion": 14, "early-fusion-visual": 11, "transformer-audio": 10, "transformer-text": 10,
                    "early-fusion-audio": 9, "early-fusion-text": 9, "cnn-all": 6, "cnn-visual": 4, "cnn-audio": 2,
                    "cnn-text": 2}
DEFAULT_SECONDS_PER_SEED = 30


def _cost(name: str) -> float:
    return SECONDS_PER_SEED.get(name.split("[")[0], DEFAULT_SECONDS_PER_SEED)


def _schedule(jobs: Mapping[str, list[tuple]], lanes: list):
    """Run ``jobs`` (argument tuples of :func:`_job`, by experiment) on ``lanes`` (one worker process each) and
    yield ``(experiment, RunResult)`` as seeds finish.

    A lane keeps to one experiment until its seeds are all taken, so every seed after the lane's first reuses the
    model it traced (``training.TracedModels``); a free lane starts the longest experiment not yet started
    (longest-processing-time first, by :data:`SECONDS_PER_SEED` × seeds), and when none is left, helps with the
    experiment that has the most work left, so no lane idles while work remains.
    """
    from concurrent.futures import FIRST_COMPLETED, wait

    pending = {n: list(j) for n, j in jobs.items()}
    unstarted = sorted(pending, key=lambda n: -_cost(n) * len(pending[n]))
    current: list[str | None] = [None] * len(lanes)

    def next_job(lane: int):
        name = current[lane]
        if not (name and pending.get(name)):
            name = unstarted.pop(0) if unstarted else max(
                (n for n in pending if pending[n]), key=lambda n: _cost(n) * len(pending[n]), default=None)
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
                running[lanes[lane].submit(_job, *job[1])] = (lane, job[0])
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                lane, name = running.pop(future)
                result = future.result()
                job = next_job(lane)
                if job:
                    running[lanes[lane].submit(_job, *job[1])] = (lane, job[0])
                yield name, result
    except BaseException:  # Ctrl-C, SIGTERM (the CLI raises KeyboardInterrupt for it) or a failed seed
        for lane in lanes:
            lane.shutdown(wait=False, cancel_futures=True)
        _end_workers()
        raise
    for lane in lanes:
        lane.shutdown(wait=True)


def _end_workers(grace: float = 10.0) -> None:
    """Stop every worker process this process started: SIGTERM (a worker then removes its staging folders and
    exits, :func:`_worker_init`), SIGKILL for any still running after ``grace`` seconds."""
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


BACKENDS = ("local", "ray")


def _backend(backend: str | None, address: str | None) -> tuple[str, str | None]:
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


def _local_lanes(workers: int) -> list:
    """``workers`` single-process pools (spawned: never fork a TensorFlow process), one TensorFlow thread each.

    The processes start here with SIGINT blocked, a mask they keep: Ctrl-C reaches the whole process group, and only
    this process answers it (by ending the workers, :func:`_end_workers`), so no worker prints a traceback."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    lanes = [ProcessPoolExecutor(1, mp_context=context, initializer=_worker_init, initargs=(os.getpid(),))
             for _ in range(workers)]
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for lane in lanes:
            lane.submit(int)  # starts the lane's process now, while SIGINT is blocked
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    return lanes


class _RayLane:
    """One Ray actor (a worker process that keeps its traced models) behind the ``submit``/``shutdown`` of a
    one-process pool, so :func:`_schedule` treats it as a local lane."""

    def __init__(self, ray, actor_class):
        self._ray, self._actor = ray, actor_class.remote()

    def submit(self, fn, *args):
        return self._actor.call.remote(fn, *args).future()

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._ray.kill(self._actor)


class _LaneActor:
    """The body of a Ray lane: one TensorFlow thread, then whatever :func:`_schedule` sends."""

    def __init__(self):
        _one_thread()
        _signals_end_worker()

    def call(self, fn, *args):
        return fn(*args)


def _ray_lanes(workers: int | None, address: str | None) -> list:
    """Lanes on a Ray cluster at ``address`` (None: a local instance with this machine's CPUs, no dashboard)."""
    try:
        import ray
    except ImportError:
        raise ValueError("backend 'ray' needs the ray extra: make setup-ray (or pip install .[ray])") from None
    if not ray.is_initialized():
        env = {k: v for k, v in os.environ.items() if k in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS",
                                                               "PYTHONHASHSEED", "MSER_REUSE_TRACES")}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": env}, **({} if address else {"num_cpus": os.cpu_count()}))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actor = ray.remote(num_cpus=1)(_LaneActor)
    return [_RayLane(ray, actor) for _ in range(workers if workers and workers > 1 else cpus)]


def _architecture_payloads(exps: Sequence[Experiment]) -> dict[str, bytes] | None:
    """For every architecture not built in, its registration pickled by value for the worker processes (cloudpickle
    pickles importable functions by reference and notebook ones by value); None (run in this process) if one
    cannot be pickled."""
    from .architectures import ARCHITECTURES, is_built_in

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


def _job(payload: bytes | None, experiment: Experiment, data: ERCDataset, seed: int, out: Path | None,
         options: dict) -> RunResult:
    """A worker's job: register a shipped architecture (if any), then run one seed."""
    if payload is not None:
        import pickle

        from .architectures import ARCHITECTURES, register_architecture

        name, builder, modalities, speaker = pickle.loads(payload)  # our own bytes, from the parent process
        if name not in ARCHITECTURES:
            register_architecture(name, modalities=modalities, speaker=speaker)(builder)
    with warnings.catch_warnings():  # the parent printed what the data warrants, once
        warnings.simplefilter("ignore", DataWarning)
        return run_seed(experiment, data, seed, out=out, **options)


def _one_thread() -> None:
    """One TensorFlow thread in this process, so workers do not fight over the cores."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _worker_init(parent: int) -> None:
    """A local worker's initialiser: one TensorFlow thread; SIGTERM removes its staging folders and ends it; and it
    ends itself the same way if ``parent`` (the process that started it) is gone, so no worker trains on orphaned."""
    import threading

    _signals_end_worker()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        _end_this_worker()

    threading.Thread(target=watch, name="mser-parent-watch", daemon=True).start()
    _one_thread()


def _signals_end_worker() -> None:
    import signal

    signal.signal(signal.SIGTERM, lambda signum, frame: _end_this_worker())


def _end_this_worker() -> None:
    from data_utils.fileio import remove_live_staging

    remove_live_staging()
    os._exit(143)
