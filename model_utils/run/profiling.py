"""Where the time of a batch of runs went: per experiment and seed, and how busy each worker process was.

Reads the timing every seed records in its provenance (:func:`model_utils.run.seed.train_seed`: build, training
steps, the first epoch's steps, validation, test prediction, clear_session, the rest of ``fit`` (epoch bookkeeping, keeping the best
epochs' weights), saving the model, start and end, process id, whether the traced model was reused) from
the run directories under a root (``reports/runs`` after ``make reproduce``). ``mser reproduce`` writes the result
to ``reports/profile.json`` and ``reports/profile.md``, and the seconds per seed of every experiment to
``reports/costs.json`` (:func:`write_costs`), the file the scheduler reads (:mod:`model_utils.run.schedule`) once
copied over ``model_utils/run/costs.json``.

Tracing is estimated, not measured: the first epoch's steps minus the mean of the later epochs' (one epoch of a
seed that reused a traced model costs what any later epoch costs).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..results import SEED_RESULT, SUMMARY
from .seed import TIMING_SECONDS

_MEASURED = tuple(k for k in TIMING_SECONDS if k != "first_epoch_steps")  # the first epoch: in "steps"


def seed_timings(runs_root: str | Path) -> list[dict]:
    """One row per (experiment, seed) under ``runs_root`` whose seed recorded its timing; times in seconds."""
    rows = []
    for summary in sorted(Path(runs_root).glob(f"*/{SUMMARY}")):
        name = json.loads(summary.read_text())["experiment"]
        for result in sorted(summary.parent.glob(f"seed_*/{SEED_RESULT}")):
            record = json.loads(result.read_text())
            timing = record.get("provenance", {}).get("timing")
            if not timing:
                continue
            epochs = max(1, int(timing["epochs"]))
            later = (timing["steps"] - timing["first_epoch_steps"]) / (epochs - 1) if epochs > 1 else 0.0
            row = {"experiment": name, "seed": record["seed"], "pid": timing["pid"],
                   "started": timing["started"], "ended": timing["ended"],
                   "wall": timing["ended"] - timing["started"], "build": timing["build"],
                   "steps": timing["steps"], "trace": max(0.0, timing["first_epoch_steps"] - later),
                   "validation": timing["validation"], "test_prediction": timing["test_prediction"],
                   # recorded since 2026-11-30; older runs count them as unaccounted
                   **{k: timing.get(k, 0.0) for k in ("clear_session", "fit_other", "save")},
                   "epochs": epochs, "reused_trace": bool(timing["reused_trace"])}
            row["unaccounted"] = max(0.0, row["wall"] - sum(row[k] for k in _MEASURED))
            rows.append(row)
    return rows


def profile(runs_root: str | Path, notebooks: dict[str, float] | None = None) -> dict:
    """Totals per experiment, per worker process (busy seconds, first start, last end) and overall (span, busy
    fraction of the workers, idle tail: how long workers waited at the end for the last one); ``notebooks``
    (notebook -> wall seconds), if given, is kept as is."""
    rows = seed_timings(runs_root)
    out: dict = {"notebooks": notebooks or {}, "experiments": {}, "workers": {}, "overall": {}}
    if not rows:
        return out
    parts = ("wall", "trace") + _MEASURED + ("unaccounted",)
    for name in sorted({r["experiment"] for r in rows}):
        mine = [r for r in rows if r["experiment"] == name]
        out["experiments"][name] = {"seeds": len(mine), "reused_traces": sum(r["reused_trace"] for r in mine),
                                    **{p: round(sum(r[p] for r in mine), 1) for p in parts}}
    start, end = min(r["started"] for r in rows), max(r["ended"] for r in rows)
    for pid in sorted({r["pid"] for r in rows}):
        mine = [r for r in rows if r["pid"] == pid]
        out["workers"][str(pid)] = {"seeds": len(mine), "busy": round(sum(r["wall"] for r in mine), 1),
                                    "first_start": round(min(r["started"] for r in mine) - start, 1),
                                    "last_end": round(max(r["ended"] for r in mine) - start, 1)}
    span = end - start
    busy = sum(r["wall"] for r in rows)  # unrounded: the workers' rounded totals can add up past the span
    lanes = _most_at_once(rows)
    out["overall"] = {"span": round(span, 1), "seeds": len(rows), "lanes": lanes,
                      # of the span × the most seeds that ran at once: how much the workers were training
                      "busy_fraction": round(busy / (span * lanes), 3) if span else 1.0,
                      "idle": round(span * lanes - busy, 1),
                      **{p: round(sum(r[p] for r in rows), 1) for p in parts}}
    return out


def _most_at_once(rows: list[dict]) -> int:
    """The most seeds that were training at the same moment (the lanes a batch had)."""
    events = sorted([(r["started"], 1) for r in rows] + [(r["ended"], -1) for r in rows])
    most = running = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def profile_markdown(report: dict, *, title: str = "Profile") -> str:
    """:func:`profile` as markdown: the overall line, notebooks, then experiments by total wall seconds."""
    o = report.get("overall", {})
    lines = [f"## {title}", ""]
    if report.get("notebooks"):
        lines += ["| notebook | wall s |", "|---|---:|"]
        lines += [f"| {n} | {s:.0f} |" for n, s in report["notebooks"].items()] + [""]
    if o:
        lines += [f"{o['seeds']} seeds in {o['span']:.0f} s, at most {o['lanes']} at once ({len(report['workers'])} "
                  f"worker processes in all): the lanes trained {o['busy_fraction']:.0%} of the time (idle "
                  f"{o['idle']:.0f} lane-seconds: start-up, notebook cells, tails); seconds summed over seeds: training "
                  f"steps {o['steps']:.0f} (of which tracing about {o['trace']:.0f}), validation "
                  f"{o['validation']:.0f}, build {o['build']:.0f}, test prediction {o['test_prediction']:.0f}, "
                  f"saving models {o['save']:.0f}, clear_session {o['clear_session']:.0f}, the rest of fit "
                  f"{o['fit_other']:.0f}, not accounted for {o['unaccounted']:.0f}.", "",
                  "| experiment | seeds | traces reused | wall s | steps s | tracing s | validation s | build s |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        by_wall = sorted(report["experiments"].items(), key=lambda kv: -kv[1]["wall"])
        lines += [f"| {n} | {e['seeds']} | {e['reused_traces']} | {e['wall']:.0f} | {e['steps']:.0f} | "
                  f"{e['trace']:.0f} | {e['validation']:.0f} | {e['build']:.0f} |" for n, e in by_wall]
    return "\n".join(lines) + "\n"


def costs(runs_root: str | Path) -> dict[str, float]:
    """Mean wall seconds of one seed of each experiment under ``runs_root`` (a derived ``base[k=v]`` counts as its
    base), rounded to whole seconds: the numbers the scheduler orders jobs by."""
    by_name: dict[str, list[float]] = {}
    for row in seed_timings(runs_root):
        by_name.setdefault(row["experiment"].split("[")[0], []).append(row["wall"])
    return {name: float(round(sum(w) / len(w))) for name, w in sorted(by_name.items(), key=lambda kv: -sum(kv[1]))}


def write_costs(runs_root: str | Path, path: str | Path, *, about: str) -> Path | None:
    """Write :func:`costs` of ``runs_root`` to ``path`` in the scheduler's format (``seconds_per_seed``, a
    ``default_seconds_per_seed`` for experiments not listed: their median, and ``about``: where they were measured);
    None, writing nothing, when no seed recorded its timing."""
    from data_utils.fileio import write_text

    seconds = costs(runs_root)
    if not seconds:
        return None
    ordered = sorted(seconds.values())
    doc = {"about": about, "default_seconds_per_seed": ordered[len(ordered) // 2], "seconds_per_seed": seconds}
    write_text(Path(path), json.dumps(doc, indent=1) + "\n", overwrite=True)
    return Path(path)
