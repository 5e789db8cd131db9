"""`mser data …`: describe, fetch and generate datasets."""
from __future__ import annotations

import argparse
import json

from data_utils.labels import DEFAULT_SCHEME, SCHEMES

from . import download
from ._common import handles_data_errors

DATA_HELP = ("a pickle in Poria et al.'s layout, or 'synthetic' for the built-in data (default; "
             "'synthetic-small' for a tiny version)")


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="describe, download or generate datasets")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{summary,download,synthetic}")

    summary = sub.add_parser("summary", help="print a JSON summary of a dataset")
    summary.add_argument("--data", default="synthetic", help=DATA_HELP)
    summary.add_argument("--scheme", default=DEFAULT_SCHEME, choices=sorted(SCHEMES) + ["native"],
                         help=f"label scheme (default {DEFAULT_SCHEME})")
    summary.set_defaults(func=_summary)

    download.register(sub)

    synth = sub.add_parser("synthetic", help="write the built-in synthetic data as a pickle (NOT IEMOCAP)")
    synth.add_argument("--out", required=True, help="where to write the pickle")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--force", action="store_true", help="overwrite an existing file")
    synth.set_defaults(func=_synthetic)


@handles_data_errors
def _summary(args: argparse.Namespace) -> int:
    from data_utils.dataset import load_dataset

    print(json.dumps(load_dataset(args.data, scheme=args.scheme).summary(), indent=2))
    return 0


@handles_data_errors
def _synthetic(args: argparse.Namespace) -> int:
    from data_utils.fileio import check_output_path
    from data_utils.synthetic import write_synthetic

    check_output_path(args.out, overwrite=args.force, option="--out")
    path = write_synthetic(args.out, seed=args.seed, overwrite=args.force)
    print(json.dumps({"written": str(path), "synthetic": True, "seed": args.seed}))
    return 0

