"""A run's results, in memory and on disk: written and read back by the same code. No deep-learning backend here.

A run directory (what ``mser run`` and ``run_many(out_root=...)`` write)::

    config.json          what was run: the experiment, the full training config, the data's SHA-256, the protocol;
                         written first, so a rerun into the same folder can resume it or refuse a different config
    seed_<s>/            one per seed, renamed into place only when complete (an interrupted seed leaves nothing)
        result.json      metrics, validation scores, history, best epoch, seconds (and the folds of a CV run)
        predictions.npz  y_true, y_pred (-1 where not scored), probabilities (N, T, C), mask, dialogue_ids
        confusion_matrix.csv
        model.keras      the trained model (a CV run: fold_<session>.keras, one per fold)
    summary.json         every seed's metrics, mean ± std, the seed ensemble, provenance

:func:`read_run` turns a directory back into the :class:`RunResult` the runner returned, so tables and comparisons
have one code path whether the run is in memory or on disk.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from data_utils.identity import data_sha256  # noqa: F401  (re-exported: runs record it)
from data_utils.fileio import (OutputExistsError, atomic_path, csv_text, frame_csv, release_staging, staging_dir,
                               write_json, write_text)

from . import metrics
from .config import DEFAULT_METRIC, Experiment
from .rundir import (CONFIG, CONFUSION, PREDICTIONS, PREDICTIONS_CSV, SEED_RESULT, SEED_STAGING_PREFIX, SUMMARY,
                     is_seed_folder)


@dataclass
class FoldResult:
    """One fold of a cross-validated seed: the held-out session and how its model was selected."""

    session: str
    history: list[dict]
    best_epoch: int
    epochs_run: int
    seconds: float
    validation: dict  # validation metrics of the restored weights
    metrics: dict  # test metrics of the held-out session's utterances
    validation_dialogues: list[str]


@dataclass
class SeedResult:
    """One seed of a run. ``predictions`` (N, T) are class indices, -1 where not scored; ``probabilities`` (N, T, C)
    the model's posteriors (zero where not scored). A cross-validated seed has ``folds`` and no history of its own."""

    seed: int
    metrics: dict
    history: list[dict]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    validation: dict = field(default_factory=dict)
    folds: list[FoldResult] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)  # when and at which commit this seed was trained

    def record(self) -> dict:
        """What ``result.json`` holds (everything but the arrays)."""
        return {"seed": self.seed, "metrics": self.metrics, "validation": self.validation,
                "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                "train_seconds": self.train_seconds, "history": self.history,
                "folds": [dataclasses.asdict(f) for f in self.folds], "provenance": self.provenance}


@dataclass
class RunResult:
    """An experiment run over seeds on one scored set: the test split, or every utterance of a cross-validation.

    ``labels``/``mask`` (N, T) and ``dialogue_ids`` describe the scored set; ``test`` is the scored
    :class:`~data_utils.dataset.ERCDataset` itself when the run is in memory (None when read from disk), for the
    error analyses that need speakers and lengths. ``config`` is the run's ``config.json`` document.
    """

    experiment: Experiment
    data: dict  # {"path", "synthetic", "label_scheme", "sha256"}
    class_names: tuple[str, ...]
    labels: np.ndarray
    mask: np.ndarray
    dialogue_ids: tuple[str, ...]
    config: dict = field(default_factory=dict)
    seeds: list[SeedResult] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    test: Any = None
    folder: Path | None = None  # its run directory, when it has one (model_utils.trained.load_run reads it)

    # -- numbers --------------------------------------------------------------------------------------------
    def mean(self, metric: str = "macro_f1") -> float:
        return float(np.mean([s.metrics[metric] for s in self.seeds]))

    def validation(self) -> dict[str, list[float]]:
        """Per metric, each seed's validation score of its restored weights (for a CV run: the mean over folds)."""
        return {m: [s.validation[m] for s in self.seeds] for m in metrics.METRICS}

    def confusion(self, normalize: bool = False) -> np.ndarray:
        """Confusion matrix summed over seeds (rows true, columns predicted); row-normalised if asked."""
        cm = np.sum([np.asarray(s.metrics["confusion_matrix"]) for s in self.seeds], axis=0)
        if normalize:
            cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        return cm

    def ensemble_probabilities(self) -> np.ndarray:
        """The seeds' posteriors averaged, (N, T, C)."""
        missing = [s.seed for s in self.seeds if s.probabilities is None]
        if missing:
            raise ValueError(f"{self.experiment.name}: seeds {missing} have no stored probabilities (written by an "
                             "older version); rerun them to get the seed ensemble")
        return np.mean([s.probabilities for s in self.seeds], axis=0)

    def ensemble_predictions(self) -> np.ndarray:
        """The seed ensemble's class per scored utterance (argmax of the averaged posteriors), -1 elsewhere."""
        return np.where(self.mask, metrics.predict_classes(self.ensemble_probabilities()), -1)

    def ensemble(self) -> dict:
        """Metrics of the seed ensemble (posteriors averaged over the seeds, then argmax): one model's worth of
        numbers, reported beside the mean ± std of the single seeds, never instead of it."""
        scores = metrics.evaluate(self.labels, self.ensemble_predictions(), self.mask, self.class_names)
        return {"seeds": len(self.seeds), **{m: scores[m] for m in metrics.METRICS},
                "confusion_matrix": scores["confusion_matrix"]}

    # -- documents --------------------------------------------------------------------------------------------
    @property
    def metric(self) -> str:
        """What the run is judged by (its headline metric; runs recorded before metrics were chosen: macro-F1)."""
        return self.config.get("metric") or DEFAULT_METRIC

    @property
    def cross_validated(self) -> bool:
        return self.config.get("evaluation", {}).get("kind") == "cv-sessions"

    def summary(self) -> dict:
        """The ``summary.json`` document."""
        exp = self.experiment
        seconds = [round(s.train_seconds, 3) for s in self.seeds]
        out = {
            "experiment": exp.name,
            "base_experiment": exp.base,
            "description": exp.description,
            "architecture": exp.arch,
            "modalities": list(exp.modalities),
            "group": exp.group,
            "family": exp.family,
            "overrides": exp.overrides.to_json(),
            "dataset": dict(self.data),
            "evaluation": self.config.get("evaluation", {"kind": "test-split"}),
            "metric": self.metric,
            "seeds": [s.seed for s in self.seeds],
            "metrics": metrics.summarize([s.metrics for s in self.seeds]),
            "ensemble": self.ensemble() if all(s.probabilities is not None for s in self.seeds) else None,
            "train_seconds": {"mean": float(np.mean(seconds)), "per_seed": seconds},
            "best_epoch": [s.best_epoch if not s.folds else [f.best_epoch for f in s.folds] for s in self.seeds],
            # what selection saw: validation scores of the restored weights (compare designs on these, not on test)
            "validation": {m: {"mean": float(np.mean(v)), "per_seed": v} for m, v in self.validation().items()},
            "class_names": list(self.class_names),
            "confusion_matrix": self.confusion().tolist(),
            "utterances_scored": int(self.mask.sum()),
            # classes with no scored test utterance: their recall and F1 are 0, capping macro-F1 and UAR
            "classes_without_test_support": [c for c, n in zip(self.class_names, self.confusion().sum(axis=1))
                                             if n == 0],
            "config": self.config,  # what was run: full training config, hyperparameters, validation dialogues
            "provenance": {**self.provenance, "seeds": {str(s.seed): s.provenance for s in self.seeds}},
        }
        if self.seeds and self.seeds[0].folds:
            out["folds"] = self._fold_summary()
        return out

    def _fold_summary(self) -> list[dict]:
        rows = []
        for i, first in enumerate(self.seeds[0].folds):
            per_seed = [s.folds[i] for s in self.seeds]
            rows.append({"session": first.session, "validation_dialogues": first.validation_dialogues,
                         "metrics": metrics.summarize([f.metrics for f in per_seed]),
                         "best_epoch": [f.best_epoch for f in per_seed]})
        return rows

    def same_scored_set(self, other: "RunResult") -> bool:
        return (tuple(self.dialogue_ids) == tuple(other.dialogue_ids) and np.array_equal(self.labels, other.labels)
                and np.array_equal(self.mask, other.mask))


# ------------------------------------------------------------------------------------------------ writing

def write_seed(out: Path, run: RunResult, seed: SeedResult, *, save_models: Callable[[Path], None] | None = None,
               overwrite: bool = False) -> Path:
    """Write ``out/seed_<s>/`` completely into a temporary folder, then rename it into place in one step.

    ``save_models(folder)`` writes the trained model(s) into the folder. With ``overwrite`` an existing seed
    folder is replaced; otherwise it raises :class:`OutputExistsError`.
    """
    out = Path(out)
    final = out / f"seed_{seed.seed}"
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} exists; refusing to overwrite it (pass --force / overwrite=True)")
    tmp = staging_dir(out, prefix=f"{SEED_STAGING_PREFIX}{seed.seed}.", suffix=".part")
    try:
        write_json(tmp / SEED_RESULT, seed.record())
        arrays = dict(y_true=run.labels, y_pred=seed.predictions, mask=run.mask,
                      dialogue_ids=np.array(run.dialogue_ids))
        if seed.probabilities is not None:
            arrays["probabilities"] = seed.probabilities.astype(np.float32)
        with atomic_path(tmp / PREDICTIONS, suffix=".npz") as part:
            np.savez_compressed(part, **arrays)
        write_text(tmp / CONFUSION, confusion_csv(seed.metrics["confusion_matrix"], run.class_names))
        if seed.probabilities is not None and run.test is not None:
            write_text(tmp / PREDICTIONS_CSV, predictions_csv(run, seed.probabilities))
        if save_models is not None:
            save_models(tmp)
        if final.exists():
            if not is_seed_folder(final):
                raise OutputExistsError(f"{final} is not a seed folder this suite wrote; refusing to replace it")
            shutil.rmtree(final)
        release_staging(tmp, final)
    finally:
        if tmp.exists():
            release_staging(tmp)
    return final


def confusion_csv(cm, names: Sequence[str]) -> str:
    """The confusion matrix as CSV (rows true, columns predicted), quoted and safe to open in a spreadsheet."""
    return csv_text([["true\\pred", *names], *([n, *map(int, r)] for n, r in zip(names, cm))])


def predictions_csv(run: RunResult, probabilities: np.ndarray) -> str:
    """The scored utterances of ``run`` (its test split, or every utterance of a cross-validation) with
    ``probabilities`` (N, T, C), as :func:`model_utils.predictions.utterance_table` with each utterance's label."""
    from .predictions import utterance_table

    return frame_csv(utterance_table(run.test, probabilities, run.mask, label=True))


def write_summary(out: Path, run: RunResult, *, overwrite: bool = True) -> Path:
    """``summary.json``, after the seed ensemble's ``predictions.csv`` (when the run is in memory)."""
    if run.test is not None and run.seeds and all(s.probabilities is not None for s in run.seeds):
        write_text(Path(out) / PREDICTIONS_CSV, predictions_csv(run, run.ensemble_probabilities()), overwrite=True)
    return write_json(Path(out) / SUMMARY, run.summary(), overwrite=overwrite)


# ------------------------------------------------------------------------------------------------ reading

class RunFormatError(ValueError):
    """A run directory's file that is not as the suite writes it (edited, damaged, or from elsewhere); the message
    names the file."""


MAX_PREDICTION_BYTES = 1 << 30  # predictions.npz expands to at most this many bytes (a CV run of MOSEI: ~10 MB)
_PREDICTION_KINDS = "biuf"  # y_true, y_pred, mask, probabilities; dialogue_ids are text ('U')


def _read_json(path: Path) -> dict:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise RunFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise RunFormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(document, dict):
        raise RunFormatError(f"{path}: expected a JSON object, got {type(document).__name__}")
    return document


def read_config(out: Path) -> dict | None:
    path = Path(out) / CONFIG
    return _read_json(path) if path.is_file() else None


def seed_folders(out: Path) -> dict[int, Path]:
    """The complete seed folders of a run directory (their result and predictions present), by seed."""
    found = {}
    for folder in Path(out).glob("seed_*"):
        tail = folder.name[len("seed_"):]
        if folder.is_dir() and tail.isdigit() and (folder / SEED_RESULT).is_file() and \
                (folder / PREDICTIONS).is_file():
            found[int(tail)] = folder
    return dict(sorted(found.items()))


def load_predictions(path: Path, *, max_bytes: int = MAX_PREDICTION_BYTES) -> dict[str, np.ndarray]:
    """The arrays of a ``predictions.npz``, read without unpickling and without trusting its size: every member's
    ``.npy`` header is read first, and a file whose arrays would expand beyond ``max_bytes`` (a compression bomb),
    or that holds object arrays or anything but numbers and text, is refused (:class:`RunFormatError`)."""
    import zipfile

    path = Path(path)
    total = 0
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else
                              np.lib.format.read_array_header_2_0)
                    shape, _, dtype = header(member, max_header_size=10000)
                if dtype.hasobject or dtype.kind not in _PREDICTION_KINDS + "U":
                    raise RunFormatError(f"{path}: array {info.filename!r} has dtype {dtype}, which this suite never "
                                         "writes; refusing to load it")
                total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if total > max_bytes:
                    raise RunFormatError(f"{path}: its arrays would expand to more than {max_bytes >> 20} MiB; this "
                                         "suite never writes such a file (damaged, or a compression bomb)")
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except RunFormatError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise RunFormatError(f"{path}: not a predictions file this suite wrote ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:200]})") from None


_SEED_KEYS = ("seed", "metrics", "history", "best_epoch", "epochs_run", "train_seconds")
_ARRAY_KEYS = ("y_true", "y_pred", "mask", "dialogue_ids")


def read_seed(folder: Path) -> tuple[SeedResult, dict[str, np.ndarray]]:
    """A seed folder as a :class:`SeedResult`, with the scored set's arrays (y_true, mask, dialogue_ids).
    Raises :class:`RunFormatError` (naming the file) for a file that is not as the suite writes it."""
    folder = Path(folder)
    record = _read_json(folder / SEED_RESULT)
    missing = [k for k in _SEED_KEYS if k not in record]
    if missing:
        raise RunFormatError(f"{folder / SEED_RESULT}: lacks {', '.join(missing)}; rerun this seed")
    path = folder / PREDICTIONS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; rerun this seed")
    arrays = load_predictions(path)
    missing = [k for k in _ARRAY_KEYS if k not in arrays]
    if missing:
        raise RunFormatError(f"{path}: lacks the array(s) {', '.join(missing)}; rerun this seed")
    try:
        folds = [FoldResult(**f) for f in record.get("folds", [])]
        seed = SeedResult(seed=int(record["seed"]), metrics=dict(record["metrics"]), history=list(record["history"]),
                          best_epoch=record["best_epoch"], epochs_run=record["epochs_run"],
                          train_seconds=float(record["train_seconds"]), predictions=arrays["y_pred"],
                          probabilities=arrays.get("probabilities"), validation=dict(record.get("validation", {})),
                          folds=folds, provenance=dict(record.get("provenance", {})))
    except (TypeError, ValueError) as e:
        raise RunFormatError(f"{folder / SEED_RESULT}: not as this suite writes it ({' '.join(str(e).split())[:200]})"
                             ) from None
    if seed.predictions.shape != arrays["y_true"].shape or (
            seed.probabilities is not None and seed.probabilities.shape[:2] != seed.predictions.shape):
        raise RunFormatError(f"{path}: its arrays disagree in shape; rerun this seed")
    return seed, arrays


def read_run(out: str | Path) -> RunResult:
    """The :class:`RunResult` of a run directory (its summary, config and every seed it lists). Raises
    ``FileNotFoundError`` for an incomplete or missing run, :class:`RunFormatError` naming the file that is not as
    the suite writes it."""
    out = Path(out)
    path = out / SUMMARY
    if not path.is_file():
        if (out / CONFIG).is_file():
            raise FileNotFoundError(f"{out}: the run is incomplete (complete seeds: {sorted(seed_folders(out))}, no "
                                    "summary.json yet); rerun the same command to resume it")
        raise FileNotFoundError(f"{path}: no summary.json; is {out} a directory written by `mser run`?")
    summary = _read_json(path)
    missing = [k for k in ("experiment", "seeds", "dataset", "class_names") if k not in summary]
    if missing or not isinstance(summary.get("seeds"), list):
        raise RunFormatError(f"{path}: lacks {', '.join(missing) or 'a list of seeds'}; is it a summary written by "
                             "`mser run`?")
    config = read_config(out) or summary.get("config") or {}
    try:
        record = config.get("experiment") or {
            "name": summary["experiment"], "base": summary.get("base_experiment", ""),
            "arch": summary.get("architecture", "?"), "modalities": summary.get("modalities", []),
            **{k: summary[k] for k in ("description", "group", "family", "overrides") if k in summary}}
        experiment = Experiment.from_record(record)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        raise RunFormatError(f"{out / CONFIG}: its experiment record is not as this suite writes it "
                             f"({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    run = None
    for s in summary["seeds"]:
        folder = out / f"seed_{s}"
        if not (folder / SEED_RESULT).is_file():
            raise FileNotFoundError(f"{folder / SEED_RESULT}: missing; rerun `mser run` for {summary['experiment']}")
        seed, arrays = read_seed(folder)
        if run is None:
            run = RunResult(experiment, dict(summary["dataset"]), tuple(map(str, summary["class_names"])),
                            arrays["y_true"], arrays["mask"].astype(bool),
                            tuple(str(d) for d in arrays["dialogue_ids"]), config=config,
                            provenance=summary.get("provenance", {}))
        elif seed.predictions.shape != run.labels.shape:
            raise RunFormatError(f"{folder / PREDICTIONS}: scored another set than seed {run.seeds[0].seed}")
        run.seeds.append(seed)
    if run is None:
        raise ValueError(f"{path}: lists no seeds")
    run.folder = Path(out)
    return run


def as_run(run: "RunResult | str | Path") -> RunResult:
    """A RunResult as is, or the one a run directory holds."""
    return run if isinstance(run, RunResult) else read_run(run)


def as_runs(results) -> list[RunResult]:
    """RunResults from a mapping (name -> RunResult, as ``run_many`` returns) or an iterable of RunResults or run
    directories."""
    values = results.values() if hasattr(results, "values") else results
    return [as_run(r) for r in values]
