"""Run a named experiment over seeds: the code behind `mser run`, the notebooks and the reports.

Protocol, for every experiment alike:
1. load the data under a label scheme; hold out a dialogue-level validation split from the training dialogues
   (fixed by ``split_seed``, the same for every model and seed); optionally standardise on training dialogues;
2. for each seed: seed everything, build the model, train with early stopping on validation macro-F1, restore
   the best weights; the test split is touched once, after training, to score real utterances only;
3. summarise accuracy, macro-F1, weighted-F1 and UAR as mean ± std over seeds.
"""
from __future__ import annotations

import functools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from data_utils.dataset import ERCDataset, load_dataset, standardize, with_validation_split
from data_utils.fileio import OutputExistsError, atomic_path, write_json, write_text
from data_utils.labels import DEFAULT_SCHEME

from . import metrics
from .experiments import EXPERIMENTS, Experiment, get_experiment

DEFAULT_SEEDS = (0, 1, 2)
SUMMARY = "summary.json"


@dataclass
class SeedResult:
    seed: int
    metrics: dict
    history: list[dict]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    predictions: np.ndarray  # (N_test, T) predicted class, -1 where not scored


@dataclass
class RunResult:
    experiment: Experiment
    data: dict  # {"path", "synthetic", "label_scheme"}
    class_names: tuple[str, ...]
    test: ERCDataset
    seeds: list[SeedResult] = field(default_factory=list)

    def summary(self) -> dict:
        """The `summary.json` document."""
        per_seed = [s.metrics for s in self.seeds]
        seconds = [round(s.train_seconds, 3) for s in self.seeds]
        return {
            "experiment": self.experiment.name,
            "description": self.experiment.description,
            "architecture": self.experiment.arch,
            "modalities": list(self.experiment.modalities),
            "dataset": dict(self.data),
            "seeds": [s.seed for s in self.seeds],
            "metrics": metrics.summarize(per_seed),
            "train_seconds": {"mean": float(np.mean(seconds)), "per_seed": seconds},
            "best_epoch": [s.best_epoch for s in self.seeds],
            # what selection saw: validation scores of the restored epochs (compare designs on these, not on test)
            "validation": {m: {"mean": float(np.mean(v)), "per_seed": v} for m, v in self.validation().items()},
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion().tolist(),
            "test_utterances_scored": int(self.test.mask.sum()),
        }

    def merge(self, other: "RunResult") -> "RunResult":
        """This run and ``other`` (more seeds of the same experiment on the same test set) as one run."""
        if other.experiment != self.experiment or other.data != self.data:
            raise ValueError(f"cannot merge runs of {self.experiment.name} and {other.experiment.name}")
        seeds = sorted(self.seeds + other.seeds, key=lambda s: s.seed)
        return RunResult(self.experiment, self.data, self.class_names, self.test, seeds)

    def validation(self) -> dict[str, list[float]]:
        """Per metric, each seed's validation score at its restored (best) epoch."""
        return {m: [s.history[s.best_epoch - 1][f"val_{m}"] for s in self.seeds] for m in metrics.METRICS}

    def confusion(self, normalize: bool = False) -> np.ndarray:
        """Confusion matrix summed over seeds (rows true, columns predicted); row-normalised if asked."""
        cm = np.sum([np.asarray(s.metrics["confusion_matrix"]) for s in self.seeds], axis=0)
        if normalize:
            cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        return cm

    def mean(self, metric: str = "macro_f1") -> float:
        return float(np.mean([s.metrics[metric] for s in self.seeds]))


def prepare_data(experiment: Experiment, data: str | ERCDataset = "synthetic", *, scheme: str = DEFAULT_SCHEME,
                 split_seed: int = 0) -> tuple[ERCDataset, ERCDataset, ERCDataset]:
    """Train, validation and test sets for ``experiment`` under the protocol above."""
    ds = data if isinstance(data, ERCDataset) else load_dataset(data, scheme=scheme)
    missing = [m for m in experiment.modalities if m not in ds.modalities]
    if missing:
        fit = [e.name for e in EXPERIMENTS.values() if set(e.modalities) <= set(ds.modalities)]
        raise ValueError(
            f"experiment {experiment.name!r} needs {', '.join(missing)} features, which {ds.source} does not "
            f"have (it has {', '.join(ds.modalities)}); experiments these data fit: {', '.join(fit) or 'none'}"
        )
    ds = with_validation_split(ds, seed=split_seed)
    if experiment.standardize:
        ds = standardize(ds)
    return ds.subset("train"), ds.subset("valid"), ds.subset("test")


def run_experiment(experiment: str | Experiment, data: str | ERCDataset = "synthetic", *,
                   seeds: Sequence[int] = DEFAULT_SEEDS, epochs: int | None = None, scheme: str = DEFAULT_SCHEME,
                   out: str | Path | None = None, overwrite: bool = False, verbose: int = 1,
                   split_seed: int = 0, **train_overrides) -> RunResult:
    """Train and evaluate ``experiment`` once per seed; write the run directory ``out`` if given."""
    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    out = Path(out) if out is not None else None
    seeds = list(seeds)
    if not seeds:
        raise ValueError(f"{exp.name}: no seeds to run")
    _check_out(out, overwrite)
    splits = prepare_data(exp, data, scheme=scheme, split_seed=split_seed)
    result, config = _empty_result(exp, data, splits[2]), _config(exp, epochs, train_overrides)
    for i, seed in enumerate(seeds):
        result.seeds.append(_train_seed(exp, splits, seed, config, result.data, out=out, overwrite=overwrite,
                                        verbose=verbose, progress=f"{i + 1}/{len(seeds)}"))
    if out is not None:
        write_json(out / SUMMARY, result.summary(), overwrite=overwrite)
    return result


def run_seed(experiment: str | Experiment, data: str | ERCDataset, seed: int, *, epochs: int | None = None,
             scheme: str = DEFAULT_SCHEME, out: Path | None = None, overwrite: bool = False, verbose: int = 1,
             split_seed: int = 0, **train_overrides) -> RunResult:
    """One seed of :func:`run_experiment` (a job of :func:`run_many`): a RunResult with that seed only; writes
    ``out/seed_<seed>/`` (not the summary) if ``out`` is given."""
    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    splits = prepare_data(exp, data, scheme=scheme, split_seed=split_seed)
    result = _empty_result(exp, data, splits[2])
    result.seeds.append(_train_seed(exp, splits, seed, _config(exp, epochs, train_overrides), result.data,
                                    out=out, overwrite=overwrite, verbose=verbose))
    return result


def _config(exp: Experiment, epochs: int | None, overrides: dict):
    from .training import TrainConfig

    return TrainConfig(**{**exp.train, **overrides, **({"epochs": epochs} if epochs else {})})


def _empty_result(exp: Experiment, data: str | ERCDataset, test: ERCDataset) -> RunResult:
    source = data.source if isinstance(data, ERCDataset) else str(data)
    return RunResult(exp, {"path": source, "synthetic": bool(test.synthetic), "label_scheme": test.scheme.name},
                     test.class_names, test)


def _train_seed(exp: Experiment, splits: tuple[ERCDataset, ERCDataset, ERCDataset], seed: int, config,
                data: dict, *, out: Path | None, overwrite: bool, verbose: int, progress: str = "") -> SeedResult:
    """Seed everything, build, fit with selection on validation, score the test split once."""
    import keras

    from . import training
    from .architectures import build_model

    train, valid, test = splits
    _log(verbose, f"[{exp.name}] seed {seed}{f' ({progress})' if progress else ''} on "
                  f"{'SYNTHETIC data' if data['synthetic'] else data['path']}")
    keras.backend.clear_session()  # free the previous model's graph: many runs share one process
    training.set_seed(seed)
    model = build_model(exp.arch, dims=train.dims, modalities=exp.modalities, num_classes=train.num_classes,
                        max_len=None, num_speakers=len(train.speaker_names), **exp.hparams)
    fitted = training.fit(model, train, valid, exp.modalities, config, verbose=verbose)
    probs = training.predict(model, test, exp.modalities)
    pred = np.where(test.mask, probs.argmax(-1), -1)
    scores = metrics.evaluate(test.labels, pred, test.mask, test.class_names)
    result = SeedResult(seed, scores, fitted.history, fitted.best_epoch, fitted.epochs_run, fitted.seconds, pred)
    _log(verbose, f"[{exp.name}] seed {seed}: test accuracy {scores['accuracy']:.4f}, macro-F1 "
                  f"{scores['macro_f1']:.4f} (best epoch {fitted.best_epoch}, {fitted.seconds:.1f} s)")
    if out is not None:
        _write_seed(Path(out) / f"seed_{seed}", model, result, test, overwrite)
    return result


def _check_out(out: Path | None, overwrite: bool) -> None:
    if out is not None and (out / SUMMARY).exists() and not overwrite:
        raise OutputExistsError(f"{out / SUMMARY} exists; refusing to overwrite it (pass --force)")


def _write_seed(folder: Path, model, seed: SeedResult, test: ERCDataset, overwrite: bool) -> None:
    with atomic_path(folder / "model.keras", overwrite=overwrite, suffix=".keras") as tmp:
        model.save(tmp)
    write_json(folder / "metrics.json", seed.metrics, overwrite=overwrite)
    write_json(folder / "history.json", {"best_epoch": seed.best_epoch, "epochs": seed.history},
               overwrite=overwrite)
    cm = np.asarray(seed.metrics["confusion_matrix"])
    names = test.class_names
    rows = ["true\\pred," + ",".join(names)] + [f"{n}," + ",".join(map(str, r)) for n, r in zip(names, cm)]
    write_text(folder / "confusion_matrix.csv", "\n".join(rows) + "\n", overwrite=overwrite)
    with atomic_path(folder / "predictions.npz", overwrite=overwrite, suffix=".npz") as tmp:
        np.savez_compressed(tmp, y_true=test.labels, y_pred=seed.predictions, mask=test.mask,
                            dialogue_ids=np.array(test.dialogue_ids))


def _log(verbose: int, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def run_many(names: Iterable[str], data: str | ERCDataset = "synthetic", *, out_root: str | Path | None = None,
             scheme: str = DEFAULT_SCHEME, workers: int = 1, progress: bool = True, **kwargs
             ) -> dict[str, RunResult]:
    """Run several experiments on the same data; run directories go under ``out_root``.

    ``workers`` > 1 runs experiments in that many processes, each with one TensorFlow thread. Results are the
    same as with ``workers=1`` (op determinism makes them independent of the thread count; the tests check
    it), and two workers on two cores train about 1.8 times as many models per hour. From a script, call it
    under ``if __name__ == "__main__":`` (workers are spawned, as Python's multiprocessing requires).
    ``progress`` prints a line to stdout as each experiment finishes (``make reproduce`` relays these lines).
    """
    names = list(names)
    ds = data if isinstance(data, ERCDataset) else load_dataset(data, scheme=scheme)
    outs = {n: None if out_root is None else Path(out_root) / n for n in names}
    results = {}

    def finished(name: str, result: RunResult) -> None:
        results[name] = result
        if progress:
            print(f"[{len(results)}/{len(names)}] {name}: test macro-F1 {result.mean('macro_f1'):.4f} (mean of "
                  f"{len(result.seeds)} seeds; {sum(s.train_seconds for s in result.seeds):.0f} s of training)",
                  flush=True)

    if workers <= 1 or not names:
        for n in names:
            finished(n, run_experiment(n, ds, out=outs[n], **kwargs))
        return results

    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    seeds = list(kwargs.pop("seeds", DEFAULT_SEEDS))
    if not seeds:
        raise ValueError("no seeds to run")
    overwrite = kwargs.get("overwrite", False)
    for n in names:
        _check_out(outs[n], overwrite)
    # One job per (experiment, seed), so no core idles while one long experiment finishes its seeds.
    parts: dict[str, list[RunResult]] = {n: [] for n in names}
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: never fork a TensorFlow process
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        futures = {pool.submit(run_seed, n, ds, seed, out=outs[n], **dict(kwargs, verbose=0)): n
                   for n in names for seed in seeds}
        for future in as_completed(futures):
            name = futures[future]
            parts[name].append(future.result())
            if len(parts[name]) == len(seeds):
                run = functools.reduce(RunResult.merge, parts[name])
                if outs[name] is not None:
                    write_json(outs[name] / SUMMARY, run.summary(), overwrite=overwrite)
                finished(name, run)
    return {n: results[n] for n in names}


def _one_thread() -> None:
    """Worker initialiser: one TensorFlow thread per process, so workers do not fight over the cores."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
