"""How a trained run holds up when a modality is missing or noisy at test time (``mser robustness``).

Every seed's model of a run (:func:`model_utils.trained.load_run`) scores the run's own scored set — its test split,
or for a cross-validated run each fold's held-out session with that fold's model — under conditions:

- ``intact``: as trained (it equals the run's own test metrics);
- ``no-<m>`` for each modality the model uses, and ``no-<m1>+<m2>`` for each pair: the modality removed at test time,
  its standardised features set to the training mean (zero) at every utterance (asked for by name, any modality of
  the data: removing one the model does not read changes nothing);
- ``noise-<m>-<σ>``: Gaussian noise of standard deviation σ (in standardised units) added to the modality at every
  utterance, drawn from ``seed``, the condition's name and the fold (the same noise for every model seed and
  every run: paired, and the same whichever other conditions are asked for).

The data are rebuilt exactly as the run built them (its file, checked by SHA-256, label scheme, split seed and
folds, standardised on each fold's training dialogues). Metrics are over the scored utterances, as every report's.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from data_utils.dataset import ERCDataset, load_dataset
from data_utils.identity import describe_source

from . import metrics
from .config import CV_MODES, TrainConfig
from .run.inputs import fold_name
from .run.plan import held_out
from .trained import TrainedRun, load_run

SIGMAS = (0.5, 1.0, 2.0)


def condition_names(modalities: Sequence[str], sigmas: Iterable[float] = SIGMAS) -> list[str]:
    """``intact``, ``no-<m>`` for each modality and each pair, then ``noise-<m>-<σ>``."""
    removed = [list(c) for k in (1, 2) for c in itertools.combinations(modalities, k)]
    return (["intact"] + [f"no-{'+'.join(c)}" for c in removed]
            + [f"noise-{m}-{float(s):g}" for m in modalities for s in sigmas])


def parse_condition(name: str, modalities: Sequence[str]) -> tuple[tuple[str, ...], str | None, float]:
    """(removed modalities, noisy modality, σ) of a condition name over the data's ``modalities``; ``ValueError``
    for one the data cannot take."""
    if name == "intact":
        return (), None, 0.0
    if name.startswith("no-"):
        removed = tuple(name[3:].split("+"))
        if removed and all(m in modalities for m in removed):
            return removed, None, 0.0
    if name.startswith("noise-"):
        modality, _, sigma = name[6:].rpartition("-")
        try:
            if modality in modalities and 0 < float(sigma) < math.inf:
                return (), modality, float(sigma)
        except ValueError:
            pass
    raise ValueError(f"unknown condition {name!r} for data with {', '.join(modalities)}; conditions are intact, "
                     "no-<modality>[+<modality>] and noise-<modality>-<sigma> (a finite sigma > 0)")


def run_folds(run: TrainedRun, data: str | Path | ERCDataset | None = None) -> tuple[list, ERCDataset]:
    """The folds ``[(session, test set, standardised)]`` and the scored set of ``run``, rebuilt from its data
    (``data``: where the file has moved, or the dataset itself, loaded under the run's scheme; its SHA-256 must be
    the run's)."""
    from data_utils.synthetic import parse_source

    recorded = run.config["data"]
    if isinstance(data, ERCDataset):
        ds, source = data, data.source
    else:
        source = str(data if data is not None else recorded.get("path", ""))
        preset = parse_source(source)  # built-in data, named by its source ('synthetic-small (seed 0)')
        try:
            ds = load_dataset(preset[0] if preset else source, scheme=recorded["label_scheme"],
                              **({"seed": int(preset[1])} if preset else {}))
        except FileNotFoundError:
            raise FileNotFoundError(f"the data of {run.folder} ({source}) is not found from here; pass its path "
                                    "(--data)") from None
    found = describe_source(ds.source, synthetic=ds.synthetic, dialogues=len(ds), corpus=ds.corpus)["sha256"]
    if found != recorded.get("sha256"):
        raise ValueError(f"{source} is not the data {run.folder} was trained on (SHA-256 {_short(found)}, the run "
                         f"recorded {_short(str(recorded.get('sha256')))})")
    kind = run.config.get("evaluation", {}).get("kind", "test-split")  # 'test-split' or 'cv-<mode>' (run.plan)
    cv = None if kind == "test-split" else kind.removeprefix("cv-")
    if cv is not None and cv not in CV_MODES:
        raise ValueError(f"{run.folder}: unknown evaluation {kind!r}")
    config = TrainConfig(standardize=bool(run.config.get("train_config", {}).get("standardize", True)))
    folds, scored, _, _ = held_out(ds, config, split_seed=int(run.config.get("split_seed", 0)), cv=cv)
    return [(session, split[2]) for session, split in folds], scored


def _short(digest: str) -> str:
    """A SHA-256 cut to 16 digits for a message; anything else (``synthetic:<preset>``) whole."""
    return f"{digest[:16]}…" if len(digest) == 64 else digest


def perturbed(test: ERCDataset, removed: Sequence[str], noisy: str | None, sigma: float,
              rng: np.random.Generator) -> ERCDataset:
    """``test`` (standardised) with ``removed`` modalities set to zero and Gaussian noise of ``sigma`` on ``noisy``,
    at real utterances only (padding stays zero)."""
    features = dict(test.features)
    keep = test.present[..., None]
    for m in removed:
        features[m] = np.zeros_like(features[m])
    if noisy is not None:
        noise = rng.standard_normal(features[noisy].shape).astype(np.float32) * np.float32(sigma)
        features[noisy] = np.where(keep, features[noisy] + noise, 0.0).astype(np.float32)
    return dataclasses.replace(test, features=features)


def robustness(run_dir: str | Path, *, conditions: Sequence[str] | None = None, sigmas: Iterable[float] = SIGMAS,
               seed: int = 0, data: str | Path | ERCDataset | None = None, keep_predictions: bool = False) -> dict:
    """Every seed's model of the run in ``run_dir`` under every condition (default: :func:`condition_names` of its
    modalities). Returns ``{"run", "experiment", "data", "evaluation", "seeds", "noise_seed", "epochs_cap" (the run's
    epoch cap when it is not its experiment's own, else None), "conditions": [{
    "condition", "accuracy"|"macro_f1"|"weighted_f1"|"uar": {"mean", "std", "per_seed"}, "delta_macro_f1"}]}``,
    ``delta_macro_f1`` being the condition's mean macro-F1 minus ``intact``'s. With ``keep_predictions`` (for
    :func:`degradation_test`; not JSON) each condition also holds ``predictions`` ((N, T) per seed, -1 where not
    scored) and the result ``scored`` (the scored set's ``labels``, ``mask`` and ``dialogue_ids``)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"the noise seed is a whole number 0 or more, got {seed!r}")
    run = load_run(run_dir)
    names = list(dict.fromkeys(conditions)) if conditions is not None else condition_names(run.inputs.modalities,
                                                                                           sigmas)
    if conditions is not None and not names:
        raise ValueError("no condition asked for; leave the conditions out for all of them")
    if "intact" not in names:
        names = ["intact", *names]
    folds, scored = run_folds(run, data)
    parsed = {n: parse_condition(n, scored.modalities) for n in names}
    row = {d: i for i, d in enumerate(scored.dialogue_ids)}
    rows = []
    for name in names:
        removed, noisy, sigma = parsed[name]
        stream = zlib.crc32(name.encode())  # the noise of a condition is its own, wherever it sits in the list
        per_seed = {s: np.zeros(scored.labels.shape + (len(run.class_names),), np.float32) for s in run.seeds}
        for f, (session, test) in enumerate(folds):
            probe = perturbed(test, removed, noisy, sigma, np.random.default_rng([seed, stream, f]))
            for s in run.seeds:
                per_seed[s][[row[d] for d in test.dialogue_ids]] = run.posteriors(probe, seed=s,
                                                                                  folds=[fold_name(session)])
        predicted = [np.where(scored.mask, metrics.predict_classes(p), -1) for p in per_seed.values()]
        scores = [metrics.evaluate(scored.labels, p, scored.mask, scored.class_names) for p in predicted]
        rows.append({"condition": name, **metrics.summarize(scores),
                     **({"predictions": predicted} if keep_predictions else {})})
    intact = rows[0]["macro_f1"]["mean"]
    for r in rows:
        r["delta_macro_f1"] = r["macro_f1"]["mean"] - intact
    result = {"run": str(run.folder), "experiment": run.experiment.name, "data": dict(run.inputs.data),
              "evaluation": run.config.get("evaluation", {}).get("kind", "test-split"), "seeds": run.seeds,
              "noise_seed": seed, "epochs_cap": _epochs_cap(run.config), "conditions": rows}
    if keep_predictions:
        result["scored"] = {"labels": scored.labels, "mask": scored.mask, "dialogue_ids": scored.dialogue_ids,
                            "class_names": scored.class_names}
    return result


def _epochs_cap(config: dict) -> int | None:
    """The run's epoch cap when it is not its experiment's own (a smoke run), else None."""
    return config.get("train_config", {}).get("epochs") if "epochs" in config.get("differs_from_defaults", []) \
        else None


def robustness_frame(results: dict, metric: str = "macro_f1") -> pd.DataFrame:
    """Condition × run table of ``metric`` (mean ± std over seeds) for several :func:`robustness` results (by
    label), conditions in the first result's order; '–' where a run was not scored under a condition."""
    columns = {}
    for label, result in results.items():
        by = {c["condition"]: c[metric] for c in result["conditions"]}
        columns[label] = {c: f"{v['mean']:.4f} ± {v['std']:.4f}" for c, v in by.items()}
    order = list(dict.fromkeys(c["condition"] for r in results.values() for c in r["conditions"]))
    return pd.DataFrame(columns, index=pd.Index(order, name="condition")).fillna("–")


def degradation_test(a: dict, b: dict, condition: str, *, metric: str = "macro_f1", n_boot: int = 2000,
                     seed: int = 0) -> dict:
    """Does run ``a`` lose less than run ``b`` under ``condition``? Both :func:`robustness` results with
    ``keep_predictions``, scored on the same set. The paired bootstrap over scored dialogues
    (:func:`model_utils.metrics.contrast_bootstrap`) of ``(a under condition − a intact) − (b under condition − b
    intact)``: positive when ``a`` degrades less. Returns the contrast's verdict with each run's change."""
    for r in (a, b):
        if "scored" not in r:
            raise ValueError(f"{r['experiment']}: robustness(..., keep_predictions=True) is needed")
    if list(a["scored"]["dialogue_ids"]) != list(b["scored"]["dialogue_ids"]) or not np.array_equal(
            a["scored"]["labels"], b["scored"]["labels"]):
        raise ValueError(f"{a['experiment']} and {b['experiment']} were not scored on the same set")
    pick = {(name, c["condition"]): c for name, r in (("a", a), ("b", b)) for c in r["conditions"]}
    missing = [f"{r['experiment']}: {condition}" for n, r in (("a", a), ("b", b)) if (n, condition) not in pick]
    if missing:
        raise ValueError(f"not scored under that condition: {'; '.join(missing)}")
    systems = {f"{n}_{k}": pick[(n, c)]["predictions"] for n in "ab" for k, c in (("missing", condition),
                                                                                    ("intact", "intact"))}
    verdict = metrics.contrast_bootstrap(a["scored"]["labels"], systems, {"a_missing": 1, "a_intact": -1,
                                                                          "b_missing": -1, "b_intact": 1},
                                         a["scored"]["mask"], metric=metric, n_boot=n_boot, seed=seed,
                                         num_classes=len(a["scored"]["class_names"]))
    change = {n: pick[(n, condition)][metric]["mean"] - pick[(n, "intact")][metric]["mean"] for n in "ab"}
    return {"condition": condition, "a": a["experiment"], "b": b["experiment"], "a_change": change["a"],
            "b_change": change["b"], **verdict}


def describe_degradation(test: dict) -> str:
    """A :func:`degradation_test` in one sentence, whatever its numbers say."""
    less = "less" if test["diff"] > 0 else "more"
    verdict = "significant" if test["significant"] else "not significant"
    lo, hi = test["ci95"]
    return (f"Under {test['condition']}, {test['a']} changes by {test['a_change']:+.4f} {test['metric']} and "
            f"{test['b']} by {test['b_change']:+.4f}: {test['a']} loses {abs(test['diff']):.4f} {less} (95% CI "
            f"{lo:+.4f} … {hi:+.4f}, p = {test['p_value']:.4f}, {verdict} at 0.05; paired bootstrap over the "
            f"{test['n_dialogues']} scored dialogues, each model's seeds averaged).")


def robustness_markdown(result: dict) -> str:
    """A :func:`robustness` result as a markdown table headed by its run and data."""
    from .metrics import METRIC_LABELS, METRICS
    from .report.text import data_name, escape_markdown

    lines = [f"### {escape_markdown(result['experiment'])} with modalities missing or noisy at test time", "",
             f"Data: **{escape_markdown(data_name(result['data']))}** ({escape_markdown(result['evaluation'])}); "
             f"seeds {', '.join(map(str, result['seeds']))}; noise seed {result['noise_seed']}; mean ± std over seeds.",
             "", "| condition | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " | Δ macro-F1 |",
             "|" + "---|" * (len(METRICS) + 2)]
    for r in result["conditions"]:
        cells = [f"{r[m]['mean']:.4f} ± {r[m]['std']:.4f}" for m in METRICS]
        lines.append(f"| {r['condition']} | " + " | ".join(cells) + f" | {r['delta_macro_f1']:+.4f} |")
    return "\n".join(lines) + "\n"


def answer_degradation(tests: Sequence[dict]) -> str:
    """The answer several :func:`degradation_test` s (same runs a and b) give to "does a degrade less than b?",
    read off their numbers: where a loses significantly less, where significantly more, and where neither."""
    if not tests:
        return "No answer: no condition was tested."
    a, b = tests[0]["a"], tests[0]["b"]
    less = [t["condition"] for t in tests if t["significant"] and t["diff"] > 0]
    more = [t["condition"] for t in tests if t["significant"] and t["diff"] < 0]
    neither = [t["condition"] for t in tests if not t["significant"]]
    parts = ([f"{a} degrades significantly less than {b} under {', '.join(less)}"] if less else []) + \
        ([f"significantly more under {', '.join(more)}"] if more else []) + \
        ([f"no significant difference under {', '.join(neither)}"] if neither else [])
    return ("Yes" if less and not more else "No" if not less else "Mixed") + ": " + "; ".join(parts) + "."
