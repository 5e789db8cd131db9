"""``mser data download``: fetch IEMOCAP_features_raw.pkl and verify its git blob SHA-1."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_utils.download import DEFAULT_PATH, DEFAULT_URLS, IEMOCAP_BLOB_SHA1, DownloadError, download


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``download`` subcommand to an argparse ``subparsers`` object and return its parser."""
    parser = subparsers.add_parser(
        "download",
        help="download IEMOCAP_features_raw.pkl and verify its hash",
        description=(
            "Download Poria et al.'s IEMOCAP_features_raw.pkl, trying each URL in turn, and keep it only if its "
            f"git blob SHA-1 is {IEMOCAP_BLOB_SHA1}. A failed download leaves no file behind."
        ),
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_PATH, metavar="PATH",
                        help=f"where to put the file (default: {DEFAULT_PATH})")
    parser.add_argument("--url", action="append", dest="urls", metavar="URL",
                        help=f"URL to try instead of the {len(DEFAULT_URLS)} default GitHub copies; "
                             "repeat it to give fallbacks, tried in order")
    parser.add_argument("--force", action="store_true", help="replace an existing file at --dest")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(func=handler)
    return parser


def handler(args: argparse.Namespace) -> int:
    """Run the download; 0 when the verified file is in place, 1 (message on stderr) when it is not."""
    dest: Path = args.dest
    already_there = dest.is_file() and not args.force
    try:
        download(
            dest,
            urls=tuple(args.urls) if args.urls else DEFAULT_URLS,
            expected_sha1=IEMOCAP_BLOB_SHA1,
            overwrite=args.force,
            progress=not args.quiet,
        )
    except (DownloadError, OSError) as e:  # OSError includes OutputExistsError and local write failures
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        state = "already present and verified" if already_there else "downloaded and verified"
        print(f"{dest}: {state} (git blob SHA-1 {IEMOCAP_BLOB_SHA1})")
    return 0
