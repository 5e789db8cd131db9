"""``mser features text``: text features from a transcripts CSV, written as a corpus pickle, with the fitted
extractor saved beside it (``<out stem>.text-extractor.json`` and its ``.npz`` / ``.safetensors``:
:mod:`data_utils.extractors`), which the pickle records."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_utils.corpus import describe_widths
from data_utils.extractor_files import extractor_paths
from data_utils.labels import DEFAULT_SCHEME, SCHEME_CHOICES

from ._common import fail, handles_data_errors


def _text_features():
    """``data_utils.text_features``, imported when first needed: it imports scikit-learn (about 2.4 s), which only
    this command's handler (and its ``--help``) uses, not every ``mser`` command that builds the parser."""
    import data_utils.text_features

    return data_utils.text_features


class _Encoders:
    """``text_features.ENCODERS`` as argparse ``choices``, read only when argparse checks or lists them."""

    def __contains__(self, value) -> bool:
        return value in _text_features().ENCODERS

    def __iter__(self):
        return iter(_text_features().ENCODERS)


class _TfidfDim:
    """``text_features.DEFAULT_TFIDF_DIM`` in a help text (``%(tfidf_dim)s``), read only when the help is shown."""

    def __str__(self) -> str:
        return str(_text_features().DEFAULT_TFIDF_DIM)


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``text`` subcommand to ``subparsers`` (mounted under ``mser features``)."""
    parser = subparsers.add_parser(
        "text", help="text features from a transcripts CSV",
        description="Read a transcripts CSV (dialogue_id, turn, speaker, label, split, text[, utterance_id]), "
                    "encode every utterance's text with encoders fitted on the train split only, and write a corpus "
                    "pickle whose only modality is text.")
    parser.add_argument("--transcripts", type=Path, required=True, metavar="CSV", help="the transcripts table")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="the corpus pickle to write")
    parser.add_argument("--encoder", choices=_Encoders(), default="tfidf", metavar="ENCODER",
                        help="tfidf (default), or sentence-transformer (needs the 'text' extra)")
    dim = parser.add_argument("--dim", type=_positive_int, default=None, metavar="N",
                              help="feature width (default: %(tfidf_dim)s for tfidf, the model's 384 for "
                                   "sentence-transformer, where a smaller N applies a PCA fitted on train)")
    dim.tfidf_dim = _TfidfDim()
    parser.add_argument("--fine-tune-epochs", type=int, default=0, metavar="N",
                        help="sentence-transformer only: first fine-tune the encoder for up to N epochs as an "
                             "utterance classifier on the training dialogues' labels, keeping the epoch with the best "
                             "validation macro-F1 (default 0: no fine-tuning)")
    parser.add_argument("--no-cross-fit", dest="cross_fit", action="store_false",
                        help="with --fine-tune-epochs: embed the training dialogues with the encoder fine-tuned on "
                             "them (default: cross-fitted, each fold of training dialogues embedded by an encoder "
                             "fine-tuned on the other folds; one fine-tuning per fold plus one)")
    parser.add_argument("--scheme", default=DEFAULT_SCHEME, choices=SCHEME_CHOICES,
                        help=f"label scheme of the fine-tuning classes (default {DEFAULT_SCHEME})")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="random seed of the SVD / PCA and of fine-tuning (default 0)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite --out and its saved extractor files if they exist")
    parser.set_defaults(func=handler)
    return parser


@handles_data_errors
def handler(args: argparse.Namespace) -> int:
    """Build and write the corpus and its extractor (:func:`data_utils.text_features.write_text_features`); print a
    one-line JSON summary. Returns the exit status."""
    text_features = _text_features()
    try:
        corpus = text_features.write_text_features(
            args.transcripts, args.out, encoder=args.encoder, dim=args.dim, seed=args.seed,
            fine_tune_epochs=args.fine_tune_epochs, scheme=args.scheme, cross_fit=args.cross_fit,
            overwrite=args.force)
    except text_features.MissingExtraError as e:
        return fail(str(e))
    print(json.dumps({"dialogues": len(corpus.dialogues), "utterances": sum(map(len, corpus.dialogues.values())),
                      "dim": describe_widths(corpus)["text"], "encoder": args.encoder, "out": str(args.out),
                      "extractor": str(extractor_paths(args.out, "text")["json"])}))
    return 0


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return int(text)
