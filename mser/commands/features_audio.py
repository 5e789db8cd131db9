"""``mser features audio``: openSMILE functionals per utterance, merged into a corpus as its audio modality. The
openSMILE settings are saved beside the output as its audio extractor (``<out stem>.audio-extractor.json``:
:mod:`data_utils.extractors`), which the output records beside the base's own extractors."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from data_utils.audio_features import FEATURE_SETS, AudioFeatureError, OpenSmileMissingError, add_audio_features
from data_utils.corpus import DataFormatError, describe_widths, read_corpus, write_corpus
from data_utils.extractor_files import check_extractor_outputs, extractor_paths, remove_extractor
from data_utils.extractors import save_opensmile_extractor
from data_utils.fileio import check_output_path
from data_utils.safe_pickle import UnsafePickleError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``audio`` subcommand to an argparse ``subparsers`` object and return its parser."""
    parser = subparsers.add_parser(
        "audio",
        help="add openSMILE audio functionals to a dataset pickle",
        description=(
            "Extract openSMILE functionals from <utterance_id>.wav files (searched recursively under --audio-dir, "
            "so IEMOCAP's SessionN/sentences/wav tree works) and write --base with them as its audio modality, "
            "replacing any audio features it had. Needs the [audio] extra: pip install '.[audio]'."
        ),
    )
    parser.add_argument("--audio-dir", type=Path, required=True, metavar="DIR", help="folder holding the wav files")
    parser.add_argument("--base", type=Path, required=True, metavar="DATASET_PKL",
                        help="dataset pickle whose utterances get the audio features")
    parser.add_argument("--out", type=Path, required=True, metavar="PATH", help="where to write the new pickle")
    parser.add_argument("--feature-set", choices=list(FEATURE_SETS), default="egemaps",
                        help="eGeMAPSv02 (88-d, default) or ComParE_2016 (6373-d) functionals")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing file at --out and its saved audio extractor")
    parser.set_defaults(func=handler)
    return parser


def handler(args: argparse.Namespace) -> int:
    """Extract and write; 0 and a one-line JSON summary on success, 1 (message on stderr) on failure."""
    try:
        # fail before the slow extraction; never onto the base pickle
        check_output_path(args.out, overwrite=args.force, option="--out", inputs=[args.base])
        check_extractor_outputs(args.out, "audio", ["json"], overwrite=args.force, inputs=[args.base])
        base = read_corpus(args.base)
        # the base's own extractor files are inputs too: never written over
        check_extractor_outputs(args.out, "audio", ["json"], overwrite=args.force,
                                inputs=[args.base, *(r["path"] for r in base.extractors.values())])
        corpus = add_audio_features(base, args.audio_dir, feature_set=args.feature_set)
        created_by = shlex.join(["mser", "features", "audio", "--audio-dir", str(args.audio_dir), "--base",
                                 str(args.base), "--out", str(args.out), "--feature-set", args.feature_set])
        record = save_opensmile_extractor(args.out, args.feature_set, created_by=created_by, overwrite=args.force)
        try:
            write_corpus(dataclasses.replace(corpus, extractors={**corpus.extractors, "audio": record}), args.out,
                         overwrite=args.force)
        except BaseException:
            remove_extractor(args.out, "audio")
            raise
    except (DataFormatError, UnsafePickleError, OpenSmileMissingError, AudioFeatureError, OSError) as e:
        # OSError includes OutputExistsError and missing --base / --audio-dir
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({
        "out": str(args.out),
        "feature_set": args.feature_set,
        "dialogues": len(corpus.dialogues),
        "utterances": sum(len(d) for d in corpus.dialogues.values()),
        "widths": describe_widths(corpus),
        "extractor": str(extractor_paths(args.out, "audio")["json"]),
    }))
    return 0
