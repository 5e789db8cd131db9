"""`mser data …`: describe, fetch and generate datasets."""
from __future__ import annotations

import argparse
import json

from data_utils.labels import DEFAULT_SCHEME, SCHEME_CHOICES

from . import download
from ._common import handles_data_errors

DATA_HELP = ("a pickle in Poria et al.'s layout; CMU-MOSI/MOSEI modality pickles (one file, a folder or a quoted "
             "glob such as 'raw/*_2way.pickle'); or 'synthetic' for the built-in data (default; 'synthetic-small' for "
             "a tiny version)")
SCHEME_HELP = ("label scheme (default auto: merged4 for IEMOCAP's label names, else the file's own classes, "
               "'native')")


LABEL_NAMES_HELP = ("what the file's label ids 0, 1, ... mean, in order, e.g. neutral,joy,anger (default: the file's "
                    "extras label_names, else its layout's: IEMOCAP's hap,sad,neu,ang,exc,fru for Poria's 9-tuple)")


def label_names_arg(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"must be distinct, non-empty names separated by commas, got {text!r}")
    return names


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="describe, download or generate datasets")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="{summary,convert,download,synthetic}")

    summary = sub.add_parser("summary", help="print a JSON summary of a dataset")
    summary.add_argument("--data", default="synthetic", help=DATA_HELP)
    summary.add_argument("--scheme", default=DEFAULT_SCHEME, choices=SCHEME_CHOICES, help=SCHEME_HELP)
    summary.add_argument("--label-names", type=label_names_arg, metavar="A,B,...", help=LABEL_NAMES_HELP)
    summary.set_defaults(func=_summary)

    convert = sub.add_parser(
        "convert", help="rewrite a pickle of a recognised layout in this suite's layout (naming its labels)",
        description="Read data in any layout the loader recognises (Poria et al.'s 9-tuple, with or without a "
                    "10th element, DialogueRNN's MELD 9-tuple, CMU-MOSI/MOSEI modality pickles: a file, a folder or "
                    "a glob), optionally name a 9-tuple's label ids, and write it as Poria's 9-tuple plus this "
                    "suite's extras dict, so every command reads it without options.")
    convert.add_argument("source", help="the data to read: a pickle, or a folder or quoted glob of CMU-MOSI/MOSEI "
                                        "modality pickles")
    convert.add_argument("--out", required=True, help="where to write the converted pickle")
    convert.add_argument("--label-names", type=label_names_arg, metavar="A,B,...", help=LABEL_NAMES_HELP)
    convert.add_argument("--force", action="store_true", help="overwrite an existing file")
    convert.set_defaults(func=_convert)

    download.register(sub)

    synth = sub.add_parser("synthetic", help="write the built-in synthetic data as a pickle (NOT IEMOCAP)")
    synth.add_argument("--out", required=True, help="where to write the pickle")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--force", action="store_true", help="overwrite an existing file")
    synth.set_defaults(func=_synthetic)


@handles_data_errors
def _summary(args: argparse.Namespace) -> int:
    from data_utils.dataset import load_dataset

    import warnings

    from data_utils.corpus import DataWarning

    summary = load_dataset(args.data, scheme=args.scheme, label_names=args.label_names).summary()
    for message in summary["warnings"]:
        warnings.warn(message, DataWarning, stacklevel=1)
    print(json.dumps(summary, indent=2))
    return 0


@handles_data_errors
def _convert(args: argparse.Namespace) -> int:
    from data_utils.corpus import read_corpus, write_corpus
    from data_utils.fileio import check_output_path

    # before the source is read; never onto the source itself
    check_output_path(args.out, overwrite=args.force, option="--out", inputs=[args.source])
    corpus = read_corpus(args.source, label_names=args.label_names)
    path = write_corpus(corpus, args.out, overwrite=args.force)
    print(json.dumps({"written": str(path), "from": args.source, "label_names": list(corpus.label_names),
                      "dialogues": len(corpus.dialogues), "modalities": list(corpus.modalities)}))
    return 0


@handles_data_errors
def _synthetic(args: argparse.Namespace) -> int:
    from data_utils.fileio import check_output_path
    from data_utils.synthetic import write_synthetic

    check_output_path(args.out, overwrite=args.force, option="--out")
    path = write_synthetic(args.out, seed=args.seed, overwrite=args.force)
    print(json.dumps({"written": str(path), "synthetic": True, "seed": args.seed}))
    return 0

