"""``mser predict``: label new conversations with a trained run (:mod:`model_utils.trained`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ._common import add_run_dir, check_outputs, handles_data_errors, run_inputs

FORMATS = ("csv", "json")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict", help="label new conversations with a trained run",
        description="Label every utterance of new dialogues with a run's models: its saved extractor (for a "
                    "transcripts CSV) and standardisation build the inputs as in training, and the posteriors are "
                    "averaged over the run's seeds. One row per utterance, in the input's order: dialogue_id, "
                    "utterance_id, turn, speaker, text (where known), predicted, p_<class>. Where the input has "
                    "labels, their metrics are printed on stderr.")
    add_run_dir(parser)
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--transcripts", type=Path, metavar="CSV",
                       help="dialogues as a transcripts CSV (dialogue_id, turn, text; speaker, label, utterance_id "
                            "optional), for a text-only run whose features mser features text built")
    given.add_argument("--data", type=Path, metavar="PATH",
                       help="dialogues as a features file in any layout the loader reads, with the run's "
                            "modalities and widths")
    parser.add_argument("--out", type=Path, metavar="PATH", help="where to write the table (default: stdout)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="csv (default) or json (JSON lines)")
    parser.add_argument("--seed", type=int, metavar="N", help="only seed N's model (default: every seed, averaged)")
    parser.add_argument("--extractor", type=Path, metavar="JSON",
                        help="the run's saved text extractor, where it has moved (its SHA-256 must be the one the run "
                             "recorded; default: where it was, or beside the run as it was)")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    parser.set_defaults(func=_predict)


@handles_data_errors
def _predict(args) -> int:
    from data_utils.fileio import frame_csv, write_text

    source = args.transcripts if args.transcripts is not None else args.data
    # before anything is read: never onto an input, never over a file without --force, never into a run directory
    check_outputs({"--out": args.out}, force=args.force,
                  inputs=[source, *run_inputs(args.run), *([args.extractor] if args.extractor else [])])
    from model_utils.trained import load_run

    run = load_run(args.run)
    table = run.predict(args.data, transcripts=args.transcripts, seed=args.seed, extractor=args.extractor)
    scores = table.attrs.get("metrics")
    text = frame_csv(table) if args.format == "csv" else "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in table.to_dict(orient="records"))
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_text(args.out, text, overwrite=args.force)
    _report(run, source, table, scores)
    return 0


def _report(run, source: Path, table, scores) -> None:
    """What was labelled, by which run, and the metrics of the labelled utterances, on stderr."""
    from data_utils.identity import SYNTHETIC_WARNING

    say = lambda line: print(line, file=sys.stderr)  # noqa: E731
    if run.inputs.data.get("synthetic"):
        say(f"note: {SYNTHETIC_WARNING}: the run {run.folder} was trained on the built-in synthetic data")
    seeds = table.attrs["seeds"]
    models = f"seed {seeds[0]}'s model" if len(seeds) == 1 else f"the ensemble of seeds {', '.join(map(str, seeds))}"
    say(f"labelled {_count(len(table), 'utterance')} of {_count(table['dialogue_id'].nunique(), 'dialogue')} from "
        f"{source} with {run.experiment.name} ({run.folder}: {models}; trained on {run.inputs.data.get('name', '?')})")
    if scores is not None:
        seen = table.attrs.get("seen_dialogues", 0)
        caveat = f" ({_count(seen, 'dialogue')} the run trained on: not held out)" if seen else ""
        say(f"scored {_count(scores['n'], 'labelled utterance')}{caveat}: " + ", ".join(
            f"{m} {scores[m]:.4f}" for m in ("accuracy", "macro_f1", "weighted_f1", "uar")))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
