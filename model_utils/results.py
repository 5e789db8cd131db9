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
import datetime
import functools
import hashlib
import json
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from data_utils.fileio import OutputExistsError, atomic_path, staging_dir, write_json, write_text

from . import metrics
from .config import Experiment

SUMMARY = "summary.json"
CONFIG = "config.json"
SEED_RESULT = "result.json"
PREDICTIONS = "predictions.npz"
REPO = Path(__file__).resolve().parents[1]


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
    tmp = staging_dir(out, prefix=f".seed_{seed.seed}.", suffix=".part")
    try:
        write_json(tmp / SEED_RESULT, seed.record())
        arrays = dict(y_true=run.labels, y_pred=seed.predictions, mask=run.mask,
                      dialogue_ids=np.array(run.dialogue_ids))
        if seed.probabilities is not None:
            arrays["probabilities"] = seed.probabilities.astype(np.float32)
        with atomic_path(tmp / PREDICTIONS, suffix=".npz") as part:
            np.savez_compressed(part, **arrays)
        write_text(tmp / "confusion_matrix.csv", confusion_csv(seed.metrics["confusion_matrix"], run.class_names))
        if save_models is not None:
            save_models(tmp)
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def confusion_csv(cm, names: Sequence[str]) -> str:
    rows = ["true\\pred," + ",".join(names)] + [f"{n}," + ",".join(map(str, r)) for n, r in zip(names, cm)]
    return "\n".join(rows) + "\n"


def write_summary(out: Path, run: RunResult, *, overwrite: bool = True) -> Path:
    return write_json(Path(out) / SUMMARY, run.summary(), overwrite=overwrite)


# ------------------------------------------------------------------------------------------------ reading

def read_config(out: Path) -> dict | None:
    path = Path(out) / CONFIG
    return json.loads(path.read_text()) if path.is_file() else None


def seed_folders(out: Path) -> dict[int, Path]:
    """The complete seed folders of a run directory (their result and predictions present), by seed."""
    found = {}
    for folder in Path(out).glob("seed_*"):
        tail = folder.name[len("seed_"):]
        if folder.is_dir() and tail.isdigit() and (folder / SEED_RESULT).is_file() and \
                (folder / PREDICTIONS).is_file():
            found[int(tail)] = folder
    return dict(sorted(found.items()))


def read_seed(folder: Path) -> tuple[SeedResult, dict[str, np.ndarray]]:
    """A seed folder as a :class:`SeedResult`, with the scored set's arrays (y_true, mask, dialogue_ids)."""
    folder = Path(folder)
    record = json.loads((folder / SEED_RESULT).read_text())
    path = folder / PREDICTIONS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; rerun this seed")
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    folds = [FoldResult(**f) for f in record.get("folds", [])]
    seed = SeedResult(seed=record["seed"], metrics=record["metrics"], history=record["history"],
                      best_epoch=record["best_epoch"], epochs_run=record["epochs_run"],
                      train_seconds=record["train_seconds"], predictions=arrays["y_pred"],
                      probabilities=arrays.get("probabilities"), validation=record.get("validation", {}),
                      folds=folds, provenance=record.get("provenance", {}))
    return seed, arrays


def read_run(out: str | Path) -> RunResult:
    """The :class:`RunResult` of a run directory (its summary, config and every seed it lists)."""
    out = Path(out)
    path = out / SUMMARY
    if not path.is_file():
        if (out / CONFIG).is_file():
            raise FileNotFoundError(f"{out}: the run is incomplete (complete seeds: {sorted(seed_folders(out))}, no "
                                    "summary.json yet); rerun the same command to resume it")
        raise FileNotFoundError(f"{path}: no summary.json; is {out} a directory written by `mser run`?")
    summary = json.loads(path.read_text())
    config = read_config(out) or summary.get("config") or {}
    record = config.get("experiment") or {
        "name": summary["experiment"], "base": summary.get("base_experiment", ""),
        "arch": summary.get("architecture", "?"), "modalities": summary.get("modalities", []),
        **{k: summary[k] for k in ("description", "group", "family", "overrides") if k in summary}}
    run = None
    for s in summary["seeds"]:
        folder = out / f"seed_{s}"
        if not (folder / SEED_RESULT).is_file():
            raise FileNotFoundError(f"{folder / SEED_RESULT}: missing; rerun `mser run` for {summary['experiment']}")
        seed, arrays = read_seed(folder)
        if run is None:
            run = RunResult(Experiment.from_record(record), summary["dataset"], tuple(summary["class_names"]),
                            arrays["y_true"], arrays["mask"].astype(bool),
                            tuple(str(d) for d in arrays["dialogue_ids"]), config=config,
                            provenance=summary.get("provenance", {}))
        run.seeds.append(seed)
    if run is None:
        raise ValueError(f"{path}: lists no seeds")
    return run


def as_run(run: "RunResult | str | Path") -> RunResult:
    """A RunResult as is, or the one a run directory holds."""
    return run if isinstance(run, RunResult) else read_run(run)


# ------------------------------------------------------------------------------------------------ provenance

@functools.lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime: float) -> str:  # size and mtime: part of the cache key
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_sha256(source: str) -> str:
    """The SHA-256 of the data file ``source``, or ``synthetic:<preset>`` for built-in data ('unknown' if the
    source is no file)."""
    from data_utils.synthetic import PRESETS

    name = str(source).split(" (seed ")[0]
    if name in PRESETS:
        seed = str(source).partition(" (seed ")[2].rstrip(")") or "0"
        return f"synthetic:{name}" + ("" if seed == "0" else f":seed{seed}")
    path = Path(source)
    if not path.is_file():
        return "unknown"
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's HEAD commit, with '+dirty' when tracked files have uncommitted changes; 'unknown' outside a
    git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(command: str | None = None) -> dict:
    """Where a run came from: code version, package versions, command line and start time (UTC)."""
    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "numpy": _version("numpy"),
        "command": command or shlex.join(sys.argv),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.system()}",
    }
