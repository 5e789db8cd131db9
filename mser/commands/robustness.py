"""``mser robustness``: a trained run's models with a modality missing or noisy at test time
(:mod:`model_utils.robustness`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._common import add_run_dir, check_outputs, handles_data_errors, run_inputs

CONDITIONS = ("every seed's model scores the run's own scored set (its test split, or each fold's held-out session) "
              "intact; with each modality the model uses, and each pair, removed (standardised features set to the "
              "training mean, zero); and with Gaussian noise of sigma 0.5, 1 and 2 standardised units (seeded)")


def register(subparsers) -> None:
    summary = "score a run's models with modalities missing or noisy at test time"
    parser = subparsers.add_parser("robustness", help=summary, description=f"{summary[0].upper()}{summary[1:]}: "
                                   f"{CONDITIONS}. Prints a markdown table; --out writes the JSON.")
    add_run_dir(parser)
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the result as JSON")
    parser.add_argument("--figure", type=_figure_path, metavar="FILE.png",
                        help="write a figure of macro-F1 by condition (.png, .pdf or .svg)")
    parser.add_argument("--data", type=Path, metavar="PATH",
                        help="the run's data file, where it has moved (its SHA-256 must be the run's)")
    parser.add_argument("--conditions", metavar="C,C,...", type=lambda s: [c.strip() for c in s.split(",") if c],
                        help="only these conditions (default: all; intact is always scored)")
    parser.add_argument("--seed", type=_seed, default=0, metavar="N", help="seed of the noise (default 0)")
    parser.add_argument("--force", action="store_true", help="overwrite --out and --figure if they exist")
    parser.set_defaults(func=_robustness)


@handles_data_errors
def _robustness(args) -> int:
    from data_utils.fileio import atomic_path, to_json, write_text

    # before any model is loaded: never onto the run's files, its data or --data, never into a run directory
    check_outputs({"--out": args.out, "--figure": args.figure}, force=args.force,
                  inputs=[*run_inputs(args.run), *([args.data] if args.data is not None else [])])
    from model_utils.robustness import robustness, robustness_markdown

    result = robustness(args.run, conditions=args.conditions, seed=args.seed, data=args.data)
    print(robustness_markdown(result), end="")
    if args.out is not None:
        write_text(args.out, to_json(result) + "\n", overwrite=args.force)
    if args.figure is not None:
        from model_utils.report.plots import plot_robustness

        fig = plot_robustness(result)
        kind = args.figure.suffix.lower()
        with atomic_path(args.figure, overwrite=args.force, suffix=kind) as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=kind[1:])
    return 0


FIGURE_FORMATS = (".png", ".pdf", ".svg")


def _figure_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise argparse.ArgumentTypeError(f"{text}: a figure is written as {', '.join(FIGURE_FORMATS)}; name it so")
    return path


def _seed(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"the noise seed is a whole number 0 or more, got {text!r}")
    return int(text)
