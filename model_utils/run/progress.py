"""What a run says while it trains, on stderr (stdout stays for results: ``mser run`` prints JSON there).

Three kinds of line, one formatter each, so that the runner writes them and ``mser reproduce`` recognises them
(:data:`RELAYED`) from the same definitions:

- a line per finished seed (:func:`seed_line`): its test accuracy and headline metric (or CV's), how its epoch was
  selected and its training time, for every worker count;
- a line per finished experiment (:func:`experiment_line`) when a batch of experiments runs (``run_many``; the
  notebooks print these);
- a progress bar over the seeds of a run (``tqdm``) where stderr is a terminal or a notebook, unless
  ``MSER_PROGRESS=lines`` (how ``mser reproduce`` runs the notebooks: their outputs are pages, not terminals).
"""
from __future__ import annotations

import os
import re
import sys

EXPERIMENT_PREFIX = re.compile(r"^\[\d+/\d+\] ")
# The lines `mser reproduce` relays from a notebook's output: an experiment finished, or a stage began.
RELAYED = re.compile(r"^(running: |\[\d+/\d+\] )")


# How progress lines name a metric.
LINE_LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "weighted_f1": "weighted-F1", "uar": "UAR"}


def seed_line(name: str, result, metric: str = "macro_f1") -> str:
    """``[text-bilstm] seed 1: accuracy 0.6012, macro-F1 0.5871 (best epoch 12, 30.4 s)`` for a finished
    :class:`~model_utils.results.SeedResult` (scored on the test split, or its held-out sessions under
    cross-validation, where the folds replace the best epoch): accuracy and the run's headline ``metric`` (macro-F1
    when that is accuracy)."""
    selected = f"{len(result.folds)} folds" if result.folds else f"best epoch {result.best_epoch}"
    scores = result.metrics
    metric = "macro_f1" if metric == "accuracy" else metric
    return (f"[{name}] seed {result.seed}: accuracy {scores['accuracy']:.4f}, {LINE_LABELS[metric]} "
            f"{scores[metric]:.4f} ({selected}, {result.train_seconds:.1f} s)")


def experiment_line(done: int, total: int, name: str, result, *, cv: str | None) -> str:
    """``[3/17] rnn-text: test macro-F1 0.4123 (mean of 3 seeds; 75 s of training)`` for a finished run, in its
    headline metric."""
    scored = "test" if cv is None else f"CV ({cv})"
    metric = result.metric
    return (f"[{done}/{total}] {name}: {scored} {LINE_LABELS[metric]} {result.mean(metric):.4f} (mean of "
            f"{len(result.seeds)} seeds; {sum(s.train_seconds for s in result.seeds):.0f} s of training)")


class SeedProgress:
    """Per-seed lines on stderr while ``total`` seeds train in worker processes, with a ``tqdm`` bar where stderr
    is a terminal or a notebook kernel; nothing when ``verbose`` is 0. A context manager; call :meth:`done` with
    each finished seed's line."""

    def __init__(self, total: int, *, verbose: int, description: str = "seeds"):
        self.verbose = verbose
        self.bar = None
        if verbose and total > 1 and _bar_wanted():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=description, unit="seed", file=sys.stderr, leave=False)

    def done(self, line: str) -> None:
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
            self.bar.update(1)
        else:
            print(line, file=sys.stderr, flush=True)

    def __enter__(self) -> "SeedProgress":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _bar_wanted() -> bool:
    if os.environ.get("MSER_PROGRESS", "") == "lines":
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)()) or "ipykernel" in sys.modules
