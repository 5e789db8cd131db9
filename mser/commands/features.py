"""`mser features …`: build datasets from your own transcripts or audio."""
from __future__ import annotations

from . import features_audio, features_text


def register(subparsers) -> None:
    features = subparsers.add_parser("features", help="build features from transcripts or audio")
    sub = features.add_subparsers(dest="features_command", required=True, metavar="{text,audio}")
    features_text.register(sub)
    features_audio.register(sub)
