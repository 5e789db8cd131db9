"""``mser robustness``: a trained run's models with a modality missing or noisy at test time
(:mod:`model_utils.robustness`)."""
from __future__ import annotations

from pathlib import Path

from ._common import add_run_dir, handles_data_errors, run_files

CONDITIONS = ("every seed's model scores the run's own scored set (its test split, or each fold's held-out session) "
              "intact; with each modality the model uses, and each pair, removed (standardised features set to the "
              "training mean, zero); and with Gaussian noise of sigma 0.5, 1 and 2 standardised units (seeded)")


def register(subparsers) -> None:
    summary = "score a run's models with modalities missing or noisy at test time"
    parser = subparsers.add_parser("robustness", help=summary, description=f"{summary[0].upper()}{summary[1:]}: "
                                   f"{CONDITIONS}. Prints a markdown table; --out writes the JSON.")
    add_run_dir(parser)
    parser.add_argument("--out", type=Path, metavar="FILE.json", help="write the result as JSON")
    parser.add_argument("--figure", type=Path, metavar="FILE.png", help="write a figure of macro-F1 by condition")
    parser.add_argument("--data", type=Path, metavar="PATH",
                        help="the run's data file, where it has moved (its SHA-256 must be the run's)")
    parser.add_argument("--conditions", metavar="C,C,...", type=lambda s: [c.strip() for c in s.split(",") if c],
                        help="only these conditions (default: all; intact is always scored)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the noise (default 0)")
    parser.add_argument("--force", action="store_true", help="overwrite --out and --figure if they exist")
    parser.set_defaults(func=_robustness)


@handles_data_errors
def _robustness(args) -> int:
    from data_utils.fileio import atomic_path, check_output_path, to_json, write_text

    for option, path in (("--out", args.out), ("--figure", args.figure)):
        if path is not None:  # before any model is loaded; never onto a file of the run
            check_output_path(path, overwrite=args.force, option=option, inputs=run_files(args.run))
    from model_utils.robustness import robustness, robustness_markdown

    result = robustness(args.run, conditions=args.conditions, seed=args.seed, data=args.data)
    print(robustness_markdown(result), end="")
    if args.out is not None:
        write_text(args.out, to_json(result) + "\n", overwrite=args.force)
    if args.figure is not None:
        from model_utils.report.plots import plot_robustness

        fig = plot_robustness(result)
        with atomic_path(args.figure, overwrite=args.force, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return 0
