"""One seed of a run: seed everything, build, fit with selection on validation, score the held-out dialogues once.

:func:`train_seed` is where a model is trained for the suite (every runner, worker and notebook comes here);
:func:`run_and_write` adds the seed's folder in the run directory, written atomically (the trained models are staged
and moved in with it). A process keeps the models it traced (:func:`traced_models`) so that later seeds of the same
experiment reuse the graph, re-initialised to the state a fresh build has.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from data_utils.identity import SYNTHETIC_NAME
from data_utils.dataset import ERCDataset
from data_utils.fileio import STAGING_MARK, release_staging, staging_dir

from .. import metrics
from ..config import Experiment, TrainConfig
from ..machine.provenance import provenance
from ..results import FoldResult, RunResult, SeedResult, write_seed
from ..rundir import MODEL_STAGING_PREFIX
from .plan import Plan
from .progress import seed_line
from .tensorboard_logs import callback as tensorboard_callback


# What a seed's provenance records under "timing", in seconds (besides "started" and "ended", Unix times, "pid",
# "epochs" and "reused_trace"); model_utils.run.profiling reads them.
TIMING_SECONDS = ("build", "steps", "first_epoch_steps", "validation", "test_prediction", "clear_session",
                  "fit_other", "save")


def log(verbose: int, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def train_seed(plan: Plan, seed: int, *, verbose: int, staging: Path | None, progress: str = "",
               tensorboard: Path | None = None) -> SeedResult:
    """Seed everything, build, fit with selection on validation, score the held-out dialogues once per fold; the
    trained models go to ``staging`` (if given) as ``model.keras`` or ``fold_<session>.keras``. ``tensorboard``:
    the experiment's log folder (:func:`~model_utils.run.tensorboard_logs.event_folders`), where Keras' TensorBoard
    callback writes the seed's per-epoch scalars (``seed_<s>/``, ``seed_<s>/fold_<session>/``); the same numbers."""
    import keras

    from .. import training
    from ..architectures import build_for
    from ..machine.environment import compute_device, tensorflow_threads

    device = compute_device()  # before training: a device choice that cannot hold stops the run here
    exp, config, scored = plan.experiment, plan.config, plan.scored
    where = SYNTHETIC_NAME if plan.data["synthetic"] else plan.data["path"]
    log(verbose, f"[{exp.name}] seed {seed}{f' ({progress})' if progress else ''} on {where}")
    probabilities = np.zeros(scored.labels.shape + (scored.num_classes,), np.float32)
    row = {d: i for i, d in enumerate(scored.dialogue_ids)}
    folds, fitted = [], None
    timing = {"started": time.time(), "pid": os.getpid(), **dict.fromkeys(TIMING_SECONDS, 0.0), "epochs": 0,
              "reused_trace": False}
    for session, (train, valid, test) in plan.folds:
        clock = time.perf_counter()
        keras.backend.clear_session()  # free the previous model's graph: many runs share one process
        training.set_seed(seed)
        timing["clear_session"] += time.perf_counter() - clock
        clock = time.perf_counter()
        if REUSE_TRACES:
            reused = traced_models().reused
            model = traced_models().model(trace_key(exp, train, config), lambda: build_for(exp, train), config)
            timing["reused_trace"] = traced_models().reused > reused
        else:
            model = build_for(exp, train)
            training.compile_model(model, config)
        timing["build"] += time.perf_counter() - clock
        logs = [tensorboard_callback(tensorboard, seed, session)] if tensorboard is not None else []
        fitted = training.fit(model, train, valid, exp.modalities, config, verbose=verbose > 1, compile=False,
                              callbacks=logs)
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
            log(verbose, f"[{exp.name}] seed {seed}, fold {session}: macro-F1 {folds[-1].metrics['macro_f1']:.4f}")
    probabilities *= scored.mask[..., None]
    pred = np.where(scored.mask, probabilities.argmax(-1), -1)
    scores = metrics.evaluate(scored.labels, pred, scored.mask, scored.class_names)
    timing["ended"] = time.time()
    timing = {k: round(v, 3) if isinstance(v, float) else v for k, v in timing.items()}
    trained = {**{k: v for k, v in provenance().items() if k in ("git_commit", "started")},
               "device": device, "tensorflow_threads": tensorflow_threads(), "timing": timing}
    if folds:
        result = SeedResult(seed, scores, [], 0, sum(f.epochs_run for f in folds), sum(f.seconds for f in folds),
                            pred, probabilities,
                            {m: float(np.mean([f.validation[m] for f in folds])) for m in metrics.METRICS}, folds,
                            trained)
    else:
        result = SeedResult(seed, scores, fitted.history, fitted.best_epoch, fitted.epochs_run, fitted.seconds,
                            pred, probabilities, fitted.validation, provenance=trained)
    log(verbose, seed_line(exp.name, result, plan.document.get("metric", "macro_f1")))
    return result


# The models this process has traced: a later seed (or fold) of the same experiment reuses one, re-initialised to
# exactly the state a fresh build has (training.TracedModels). MSER_REUSE_TRACES=0 builds and traces every model anew
# (the same numbers, slower; for profiling).
REUSE_TRACES = os.environ.get("MSER_REUSE_TRACES", "1") != "0"


@functools.lru_cache(maxsize=1)
def traced_models():
    """This process's :class:`training.TracedModels` (made on first use: it imports Keras)."""
    from ..training import TracedModels

    return TracedModels()


def trace_key(exp: Experiment, train: ERCDataset, config: TrainConfig) -> tuple:
    """What shapes an experiment's traced graph beyond its variables: the builder (the function object, so a
    redefined architecture never reuses the old one's graph), hyperparameters, modalities, input widths, classes,
    speaker rows and the whole training config (optimizer and loss constants)."""
    from ..architectures import get_builder, speaker_rows

    builder = get_builder(exp.arch)
    rows = speaker_rows(train, exp.hparams.get("speaker_identity", "party")) if builder.uses_speaker else 0
    return (exp.arch, id(builder), repr(sorted(exp.hparams.items())), exp.modalities,
            tuple(sorted(train.dims.items())), train.num_classes, rows, repr(config))


def run_and_write(plan: Plan, seed: int, run: RunResult, out: Path | None, *, overwrite: bool, verbose: int,
                  progress: str = "", tensorboard: Path | None = None) -> SeedResult:
    """:func:`train_seed`, then (if ``out`` is given) write ``out/seed_<seed>/`` atomically, models included."""
    if out is None:
        return train_seed(plan, seed, verbose=verbose, staging=None, progress=progress, tensorboard=tensorboard)
    staging = staging_dir(out, prefix=MODEL_STAGING_PREFIX)
    try:
        result = train_seed(plan, seed, verbose=verbose, staging=staging, progress=progress, tensorboard=tensorboard)

        def move_models(folder: Path) -> None:
            for path in staging.iterdir():
                if path.name != STAGING_MARK:
                    shutil.move(str(path), folder / path.name)

        write_seed(out, run, result, save_models=move_models, overwrite=overwrite)
    finally:
        release_staging(staging)
    return result
