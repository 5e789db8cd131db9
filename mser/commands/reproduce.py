"""`mser reproduce`: the main job behind `make reproduce`."""
from __future__ import annotations

from ._common import handles_data_errors


def register(subparsers) -> None:
    p = subparsers.add_parser("reproduce", help="run the three notebooks headless into reports/ (the main job)")
    p.add_argument("--quick", action="store_true", help="smoke run: few epochs, 2 seeds, a few minutes")
    p.add_argument("--data", help="a pickle path, a folder or quoted glob of CMU-MOSI/MOSEI modality pickles, or "
                                  "'synthetic' (default: the real IEMOCAP pickle if present or downloadable, else "
                                  "synthetic)")
    p.add_argument("--reports", default=None, help="output directory (default reports/ in the repository)")
    p.add_argument("--no-download", action="store_true", help="do not try to download the real pickle")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the notebooks' experiments on a Ray cluster: 'auto', host:port, or 'local' (the ray extra)")
    p.set_defaults(func=_reproduce, interrupted="every notebook was stopped and results.md was not written; the "
                                                 "reports folder keeps the notebooks that finished. Run the same "
                                                 "command again to start anew (that folder is kept beside the new one).")


@handles_data_errors
def _reproduce(args) -> int:
    from mser.reproduce import REPO, reproduce

    reproduce(quick=args.quick, data=args.data, reports=args.reports or REPO / "reports",
              try_download=not args.no_download, ray=args.ray)
    return 0
