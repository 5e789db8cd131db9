"""`mser list | run | table | compare | bench`: named experiments, multi-seed runs and what to make of them."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_utils.labels import DEFAULT_SCHEME, SCHEME_CHOICES
from model_utils.config import CV_MODES, GROUPS, MAX_SEEDS
from model_utils.metrics import METRICS

from ._common import RESUME_HINT, handles_data_errors
from .data import DATA_HELP, SCHEME_HELP



def register(subparsers) -> None:
    lst = subparsers.add_parser("list", help="list the named experiments")
    lst.add_argument("--group", choices=GROUPS, help="only this group")
    lst.set_defaults(func=_list)

    run = subparsers.add_parser(
        "run", help="train and evaluate an experiment over seeds",
        description="Train and evaluate an experiment over seeds into a run directory. Rerunning the same command "
                    "trains only the seeds that are missing (an interrupted run resumes); a different configuration "
                    "into the same directory is refused before any training unless --force.")
    run.add_argument("name", help="experiment name (see `mser list`)")
    _data_args(run)
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_seed_count, default=3, metavar="N",
                       help="seeds 0..N-1 (default 3); on an existing run, adds the missing ones")
    seeds.add_argument("--seed-list", type=_int_list, metavar="S,S,...", help="exactly these seeds, e.g. 7,11")
    run.add_argument("--epochs", type=_positive, help="cap on epochs (early stopping on validation decides)")
    run.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                     help="override a hyperparameter (units=32) or a training setting (train.learning_rate=3e-4); "
                          "repeat for several; unknown keys are refused with the list of valid ones")
    run.add_argument("--cv", choices=list(CV_MODES),
                     help="sessions: leave-one-session-out cross-validation, one model per held-out session, every "
                          "utterance scored once (instead of the test split); train-sessions: the same inside the "
                          "training dialogues only, never touching the test split (to choose configurations)")
    run.add_argument("--metric", choices=METRICS,
                     help="what the run is judged by: epochs are selected on it, the 'auto' loss weighting follows "
                          "it (balanced for macro_f1 and uar, none for weighted_f1 and accuracy) and it heads the "
                          "reports (default: the one the data declare, else macro_f1, the study's)")
    run.add_argument("--out", type=Path, help="run directory (default runs/NAME, with overrides, a --metric other than "
                                              "macro_f1 and --cv marked)")
    run.add_argument("--force", action="store_true",
                     help="retrain the requested seeds even if complete, and replace a run of another configuration")
    run.add_argument("--workers", type=_positive,
                     help="train the seeds in this many processes, one TensorFlow thread each (same numbers; "
                          "default: one per core, at most one per seed)")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.add_argument("--tensorboard", type=Path, metavar="DIR",
                     help="also log every seed's epochs (training loss, validation loss and metrics) for TensorBoard "
                          "into DIR/<run name>/seed_<s>/ (same numbers; DIR may hold earlier logs, none is removed; "
                          "never inside a run directory; the tensorboard extra: make setup-tensorboard)")
    run.add_argument("--ray", metavar="ADDRESS",
                     help="train the seeds on a Ray cluster: 'auto' (the cluster this machine belongs to), host:port, "
                          "or 'local' (start one here); --workers lanes, default the cluster's CPUs (the ray extra)")
    run.set_defaults(func=_run, interrupted=RESUME_HINT)

    select = subparsers.add_parser(
        "select", help="choose features × experiment by cross-validation inside the training dialogues",
        description="Cross-validate every (data, experiment) candidate inside the training dialogues, one fold per "
                    "recording session, and select the best by the pooled CV score; then score every candidate "
                    "once on the test split for the table (the test scores never take part in the choice).")
    select.add_argument("experiments", nargs="+", help="experiment names (see `mser list`)")
    select.add_argument("--data", action="append", required=True, metavar="PATH",
                        help="a corpus pickle; repeat for several feature sets")
    select.add_argument("--scheme", default=DEFAULT_SCHEME, choices=SCHEME_CHOICES, help=SCHEME_HELP)
    select.add_argument("--seeds", type=_seed_count, default=5, metavar="N", help="seeds 0..N-1 (default 5)")
    select.add_argument("--epochs", type=_positive, help="cap on epochs")
    select.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="an override for every candidate (as in `mser run`)")
    select.add_argument("--try", action="append", default=[], dest="tries", metavar="KEY=V1,V2,...",
                        help="alternatives of a setting to choose among as well (e.g. "
                             "train.class_weight=balanced,none): every candidate is cross-validated with each; "
                             "repeat for several settings")
    select.add_argument("--metric", default="macro_f1", choices=METRICS,
                        help="what candidates are chosen, trained and selected by (default macro_f1)")
    select.add_argument("--no-test", dest="test", action="store_false",
                        help="only cross-validate (do not score the candidates on the test split)")
    select.add_argument("--workers", type=_positive,
                        help="processes training side by side (default: one per core)")
    select.add_argument("--out", type=Path, default=Path("runs/select"), help="where the runs go (resumable)")
    select.set_defaults(func=_select, interrupted=RESUME_HINT)

    table = subparsers.add_parser("table", help="one markdown and CSV table from several run directories")
    table.add_argument("runs", nargs="+", type=Path, help="run directories written by `mser run`")
    table.add_argument("--csv", type=Path, help="also write the table as CSV here")
    table.add_argument("--metric", choices=METRICS,
                       help="sort the runs by this metric, best first (default: the first run's headline metric)")
    table.add_argument("--force", action="store_true", help="overwrite an existing CSV")
    table.set_defaults(func=_table)

    compare = subparsers.add_parser("compare", help="paired bootstrap test between two runs on the same test set")
    compare.add_argument("run_a", type=Path)
    compare.add_argument("run_b", type=Path)
    compare.add_argument("--metric", choices=METRICS,
                         help="the metric to test (default: the runs' headline metric, macro_f1 where they differ)")
    compare.add_argument("--n-boot", type=int, default=2000, metavar="N",
                         help="bootstrap resamples (default 2000)")
    compare.add_argument("--json", action="store_true", help="print JSON instead of a sentence")
    compare.set_defaults(func=_compare)

    bench = subparsers.add_parser("bench", help="training throughput, seconds per epoch and peak memory")
    bench.add_argument("names", nargs="+", help="experiment names; each is measured in its own process")
    _data_args(bench)
    bench.add_argument("--epochs", type=int, default=5,
                       help="timed epochs after one warm-up epoch; the median epoch counts (default 5)")
    bench.add_argument("--repeats", type=int, default=1,
                       help="fresh-process measurements per experiment, alternating between the names; the median "
                            "one is reported (default 1)")
    bench.set_defaults(func=_bench)


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="synthetic", help=DATA_HELP)
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, choices=SCHEME_CHOICES, help=SCHEME_HELP)


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)


def _seed_count(text: str) -> int:
    count = _positive(text)
    if count > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS} seeds are run (each trains a model), got {text!r}")
    return count


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, e.g. 7,11; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("needs at least one seed")
    return values


def _list(args) -> int:
    from model_utils.experiments import EXPERIMENTS

    rows = [e for e in EXPERIMENTS.values() if args.group in (None, e.group)]
    if not rows:
        print(f"no experiment in group {args.group!r}")
        return 0
    width = max(len(e.name) for e in rows)
    print(f"{'experiment':<{width}}  {'group':<11} {'modalities':<18} description")
    for e in rows:
        print(f"{e.name:<{width}}  {e.group:<11} {'+'.join(e.modalities):<18} {e.description}")
    return 0


@handles_data_errors
def _run(args) -> int:
    import shlex

    from data_utils.fileio import check_output_path, to_json
    from model_utils.run.tensorboard_logs import event_folders
    from model_utils.rundir import check_ours
    from model_utils.runner import default_workers, resolve_experiment, run_dir_name, run_experiment

    if args.epochs and any(o.strip().startswith("train.epochs=") for o in args.overrides):
        raise ValueError("give the epoch cap once: --epochs N or --set train.epochs=N, not both")
    experiment = resolve_experiment(args.name, args.overrides)  # unknown keys fail here, before any data is read
    out = check_output_path(args.out or Path("runs") / run_dir_name(experiment, args.cv, args.metric),
                            directory=True, option="--out")  # before the data is read or anything trained
    check_ours(out)  # a folder holding what the suite did not write is refused, --force or not
    event_folders(args.tensorboard, [experiment], [out], args.cv, option="--tensorboard",
                  metric=args.metric)  # the same, for the logs
    seeds = args.seed_list if args.seed_list is not None else range(args.seeds)
    # on Ray, 1 means "as many lanes as the cluster has CPUs" (model_utils.run.lanes.ray_lanes)
    workers = args.workers or (1 if args.ray else default_workers(len(seeds)))
    result = run_experiment(experiment, args.data, seeds=seeds, epochs=args.epochs, scheme=args.scheme, out=out,
                            overwrite=args.force, verbose=0 if args.quiet else 2, cv=args.cv,
                            command=shlex.join(["mser", *args.argv]), workers=workers,
                            backend="ray" if args.ray else None, address=args.ray, tensorboard=args.tensorboard,
                            metric=args.metric)
    summary = result.summary()
    print(to_json({k: summary[k] for k in ("experiment", "dataset", "evaluation", "metric", "seeds", "metrics",
                                           "ensemble", "train_seconds")}))
    print(f"wrote {out}", file=sys.stderr)
    return 0


@handles_data_errors
def _select(args) -> int:
    from data_utils.fileio import check_output_path, frame_csv, write_text
    from model_utils.run import selection
    from model_utils.experiments import get_experiment
    from model_utils.runner import default_workers, resolve_experiment

    tries = dict(selection.parse_try(t) for t in args.tries)
    if len(tries) != len(args.tries):
        raise ValueError("--try names a setting twice; give all its values in one --try")
    for name in args.experiments:  # typos, and values a setting cannot take, fail before any training
        resolve_experiment(get_experiment(name), args.overrides)
        for key, values in tries.items():
            for value in values:
                resolve_experiment(get_experiment(name), [*args.overrides, f"{key}={value}"])
    check_output_path(args.out, directory=True, option="--out")
    candidates = selection.candidates(args.data, args.experiments, args.overrides, tries)
    table = selection.select(candidates, out=args.out, seeds=range(args.seeds), metric=args.metric,
                             scheme=args.scheme, epochs=args.epochs, test=args.test,
                             workers=args.workers or default_workers(len(candidates) * args.seeds))
    markdown = selection.to_markdown(table, args.metric)
    print(markdown, end="")
    write_text(args.out / "selection.md", markdown, overwrite=True)
    write_text(args.out / "selection.csv", frame_csv(table), overwrite=True)
    return 0


@handles_data_errors
def _table(args) -> int:
    from data_utils.fileio import check_output_path, frame_csv, write_text
    from model_utils.report import runs_table, to_markdown

    if args.csv:
        # fail before printing anything; never onto a file of a run it reads
        check_output_path(args.csv, overwrite=args.force, option="--csv",
                          inputs=[p for run in args.runs for p in (run / "summary.json", run / "config.json")])
    table = runs_table(args.runs)
    metric = args.metric or (table["metric"].iloc[0] if len(table) else "macro_f1")
    table = table.sort_values(metric, ascending=False, kind="stable").reset_index(drop=True)  # best first
    print(to_markdown(table), end="")
    if args.csv:
        write_text(args.csv, frame_csv(table), overwrite=args.force)
    return 0


@handles_data_errors
def _compare(args) -> int:
    from model_utils.report import compare_runs, describe_comparison

    from model_utils.results import as_run

    a, b = as_run(args.run_a), as_run(args.run_b)
    metric = args.metric or (a.metric if a.metric == b.metric else "macro_f1")
    result = compare_runs(a, b, metric=metric, n_boot=args.n_boot)
    print(json.dumps(result, indent=2) if args.json else describe_comparison(result))
    return 0


@handles_data_errors
def _bench(args) -> int:
    from model_utils.run.bench import compare
    from model_utils.experiments import get_experiment

    for name in args.names:
        get_experiment(name)  # an unknown name fails here, before any process starts
    result = compare(args.names, args.data, scheme=args.scheme, epochs=args.epochs, repeats=args.repeats)
    print(json.dumps(result["runs"][0] if len(args.names) == 1 else result, indent=2))
    return 0
