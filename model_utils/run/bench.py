"""Training throughput, seconds per epoch and peak memory of an experiment: the code behind `mser bench`.

Speed is measured here, never asserted in timed tests. Each experiment runs in its own process so peak memory
is its own: one warm-up epoch (graph tracing), then ``epochs`` timed epochs over the training split. An epoch of
the small models takes well under a second, so a single slow epoch (another process waking up) would move a mean
a lot: the figures use the *median* epoch, and every epoch's time is reported too. :func:`compare` measures two
or more experiments in alternation (A B A B …) so that a busy spell of the machine hits them alike.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys

import numpy as np

from data_utils.identity import SYNTHETIC_NAME
from data_utils.labels import DEFAULT_SCHEME


def bench(name: str, data: str = "synthetic", *, scheme: str = DEFAULT_SCHEME, epochs: int = 5,
          seed: int = 0) -> dict:
    """Measure ``name`` in this process."""
    from .. import training
    from ..architectures import build_for
    from ..machine.environment import tensorflow_threads
    from ..experiments import get_experiment
    from .plan import prepare_data

    exp = get_experiment(name)
    train, valid, _ = prepare_data(exp, data, scheme=scheme)
    training.set_seed(seed)
    model = build_for(exp, train)
    config = exp.train_config(epochs=1, patience=1)
    training.fit(model, train, valid, exp.modalities, config, verbose=0)  # warm-up: tracing and first epoch
    epoch_seconds = training.train_epochs(model, train, exp.modalities, config, epochs)
    seconds = float(np.median(epoch_seconds))
    utterances = int(train.present.sum())
    return {
        "experiment": name,
        "data": SYNTHETIC_NAME if train.synthetic else str(data),
        "train_dialogues": len(train),
        "train_utterances": utterances,
        "epochs_timed": epochs,
        "seconds_per_epoch": round(seconds, 4),  # median over the timed epochs
        "utterances_per_second": round(utterances / seconds, 1),
        "epoch_seconds": [round(t, 4) for t in epoch_seconds],
        "parameters": int(model.count_params()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_count": os.cpu_count(),
        "tensorflow_threads": tensorflow_threads(),  # one per process unless set (model_utils/__init__.py)
        "machine": platform.machine(),
    }


def bench_in_subprocess(name: str, data: str = "synthetic", *, scheme: str = DEFAULT_SCHEME,
                        epochs: int = 5) -> dict:
    """Measure ``name`` in a fresh Python process, so peak memory is its own."""
    code = ("import json, sys; from model_utils.run.bench import bench; "
            "print(json.dumps(bench(sys.argv[1], sys.argv[2], scheme=sys.argv[3], epochs=int(sys.argv[4]))))")
    proc = subprocess.run([sys.executable, "-c", code, name, str(data), scheme, str(epochs)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark of {name!r} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(names, data: str = "synthetic", *, scheme: str = DEFAULT_SCHEME, epochs: int = 5,
            repeats: int = 1) -> dict:
    """Measure each of ``names`` ``repeats`` times, alternating between them, each time in a fresh process.

    Per experiment: the run with the median throughput (its figures, plus ``repeats_utterances_per_second``). With
    two names, also the throughput ratio second / first: ``speedup_<second>_over_<first>``.
    """
    if repeats < 1 or epochs < 1:
        raise ValueError(f"repeats and epochs must be >= 1, got repeats={repeats}, epochs={epochs}")
    names = list(names)
    measured: dict[str, list[dict]] = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            measured[name].append(bench_in_subprocess(name, data, scheme=scheme, epochs=epochs))
    runs = []
    for name in names:
        ranked = sorted(measured[name], key=lambda r: r["utterances_per_second"])
        run = dict(ranked[len(ranked) // 2])
        run["repeats_utterances_per_second"] = [r["utterances_per_second"] for r in measured[name]]
        runs.append(run)
    if len(runs) != 2:
        return {"runs": runs}
    first, second = runs
    ratio = second["utterances_per_second"] / first["utterances_per_second"]
    return {"runs": runs, f"speedup_{second['experiment']}_over_{first['experiment']}": round(ratio, 2)}
