"""Is one run better than another? The paired bootstrap over scored dialogues (:func:`model_utils.metrics.
paired_bootstrap`), for two runs in memory or on disk, in a sentence or a table."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from ..metrics import paired_bootstrap
from ..results import RunResult, as_run
from .text import data_label, evaluation_label

FEW_DIALOGUES = 10  # a bootstrap over fewer dialogues than this says little: the comparison warns


def compare_runs(a: RunResult | str | Path, b: RunResult | str | Path, *, metric: str = "macro_f1",
                 n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap over the scored dialogues: is run B's ``metric`` different from run A's? Runs are
    RunResults or run directories; both must have scored the same dialogues, labels and mask (a test split, or
    every utterance of a cross-validation). Each run's statistic is its metric averaged over its seeds."""
    a, b = as_run(a), as_run(b)
    if not a.same_scored_set(b):
        raise ValueError(f"{a.experiment.name} ({evaluation_label(a)}) and {b.experiment.name} "
                         f"({evaluation_label(b)}) were not scored on the same test set (dialogues, labels and mask "
                         "must match); a paired comparison needs the same data, label scheme and evaluation")
    result = paired_bootstrap(a.labels, [s.predictions for s in a.seeds], [s.predictions for s in b.seeds],
                              a.mask, metric=metric, n_boot=n_boot, seed=seed,
                              num_classes=len(a.class_names))  # all C classes, as every reported metric
    return {"a": a.experiment.name, "b": b.experiment.name, "data": data_label(a.data),
            "evaluation": evaluation_label(a), **result}


def describe_comparison(c: dict) -> str:
    """A :func:`compare_runs` result in one sentence, with the number of dialogues it resampled (and a warning when
    they are fewer than :data:`FEW_DIALOGUES`)."""
    verdict = "significant" if c["significant"] else "not significant"
    lo, hi = c["ci95"]
    n = c["n_dialogues"]
    over = f"the {n} test dialogues" if c.get("evaluation", "test split") == "test split" else \
        f"the {n} dialogues of the cross-validation ({c['evaluation']})"
    few = (f" Warning: only {n} dialogues were resampled (fewer than {FEW_DIALOGUES}); the p-value and interval "
           "are unreliable.") if n < FEW_DIALOGUES else ""
    return (f"{c['b']} − {c['a']} on {c['metric']}: {c['diff']:+.4f} (95% CI {lo:+.4f} … {hi:+.4f}, "
            f"p = {c['p_value']:.4f}, {verdict} at 0.05; paired bootstrap over {over}, "
            f"{c['n_boot']} resamples; data: {c['data']}).{few}")


def find_run(results: Mapping[str, RunResult], name: str) -> RunResult | None:
    """The run called ``name`` in ``results``, or the only one derived from experiment ``name`` by overrides."""
    if name in results:
        return results[name]
    derived = [r for r in results.values() if r.experiment.base == name]
    return derived[0] if len(derived) == 1 else None


def significance_table(results, pairs, *, metric: str = "macro_f1", n_boot: int = 2000,
                       seed: int = 0) -> tuple[pd.DataFrame, list[dict]]:
    """:func:`compare_runs` for every (a, b) pair whose runs are both in ``results`` (a mapping by name; a name
    also finds the one run derived from that experiment by overrides, :func:`find_run`).

    Returns a table (one row per pair: b − a, its 95% interval, p and the verdict) and the comparisons.
    """
    found = [(find_run(results, a), find_run(results, b)) for a, b in pairs]
    comparisons = [compare_runs(a, b, metric=metric, n_boot=n_boot, seed=seed)
                   for a, b in found if a is not None and b is not None]
    rows = [{"comparison": f"{c['b']} − {c['a']}", "metric": c["metric"], "diff": c["diff"],
             "ci95_low": c["ci95"][0], "ci95_high": c["ci95"][1], "p_value": c["p_value"],
             "significant": c["significant"], "seeds": "/".join(map(str, c["n_seeds"])),
             "dialogues": c["n_dialogues"]} for c in comparisons]
    columns = ["comparison", "metric", "diff", "ci95_low", "ci95_high", "p_value", "significant", "seeds",
               "dialogues"]
    return pd.DataFrame(rows, columns=columns).set_index("comparison"), comparisons
