"""`mser list | run | table | compare | bench`: named experiments, multi-seed runs and what to make of them."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from data_utils.labels import DEFAULT_SCHEME, SCHEMES

from ._common import handles_data_errors
from .data import DATA_HELP


def register(subparsers) -> None:
    lst = subparsers.add_parser("list", help="list the named experiments")
    lst.add_argument("--group", help="only this group (timnet, exploratory, fusion, final, ablation)")
    lst.set_defaults(func=_list)

    run = subparsers.add_parser("run", help="train and evaluate an experiment over seeds")
    run.add_argument("name", help="experiment name (see `mser list`)")
    _data_args(run)
    run.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default 3)")
    run.add_argument("--epochs", type=int, help="cap on epochs (early stopping on validation macro-F1 decides)")
    run.add_argument("--out", type=Path, help="run directory (default runs/NAME)")
    run.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    run.add_argument("--quiet", action="store_true", help="no progress lines")
    run.set_defaults(func=_run)

    table = subparsers.add_parser("table", help="one markdown and CSV table from several run directories")
    table.add_argument("runs", nargs="+", type=Path, help="run directories written by `mser run`")
    table.add_argument("--csv", type=Path, help="also write the table as CSV here")
    table.add_argument("--force", action="store_true", help="overwrite an existing CSV")
    table.set_defaults(func=_table)

    compare = subparsers.add_parser("compare", help="paired bootstrap test between two runs on the same test set")
    compare.add_argument("run_a", type=Path)
    compare.add_argument("run_b", type=Path)
    compare.add_argument("--metric", default="macro_f1", choices=["accuracy", "macro_f1", "weighted_f1", "uar"])
    compare.add_argument("--n-boot", type=int, default=2000)
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
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, choices=sorted(SCHEMES) + ["native"])


def _list(args) -> int:
    from model_utils.experiments import EXPERIMENTS

    rows = [e for e in EXPERIMENTS.values() if args.group in (None, e.group)]
    width = max(len(e.name) for e in rows)
    for e in rows:
        print(f"{e.name:<{width}}  {e.group:<11} {'+'.join(e.modalities):<18} {e.description}")
    return 0


@handles_data_errors
def _run(args) -> int:
    from model_utils.runner import run_experiment

    out = args.out or Path("runs") / args.name
    result = run_experiment(args.name, args.data, seeds=range(args.seeds), epochs=args.epochs, scheme=args.scheme,
                            out=out, overwrite=args.force, verbose=0 if args.quiet else 1)
    summary = result.summary()
    print(json.dumps({k: summary[k] for k in ("experiment", "dataset", "seeds", "metrics", "train_seconds")},
                     indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


@handles_data_errors
def _table(args) -> int:
    from data_utils.fileio import write_text
    from model_utils.reporting import results_table, summaries, to_markdown

    table = results_table(summaries(args.runs))
    print(to_markdown(table), end="")
    if args.csv:
        write_text(args.csv, table.to_csv(index=False), overwrite=args.force)
    return 0


@handles_data_errors
def _compare(args) -> int:
    from model_utils.reporting import compare_runs, describe_comparison

    result = compare_runs(args.run_a, args.run_b, metric=args.metric, n_boot=args.n_boot)
    print(json.dumps(result, indent=2) if args.json else describe_comparison(result))
    return 0


@handles_data_errors
def _bench(args) -> int:
    from model_utils.bench import compare
    from model_utils.experiments import get_experiment

    for name in args.names:
        get_experiment(name)  # an unknown name fails here, before any process starts
    result = compare(args.names, args.data, scheme=args.scheme, epochs=args.epochs, repeats=args.repeats)
    print(json.dumps(result["runs"][0] if len(args.names) == 1 else result, indent=2))
    return 0
