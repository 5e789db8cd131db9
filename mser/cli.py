"""The `mser` command line: `mser --help` lists the commands.

Each command lives in ``mser/commands/`` and imports heavy libraries (TensorFlow) only when it runs, so
`mser data summary` answers in a second.
"""
from __future__ import annotations

import argparse
import sys
import warnings

import model_utils  # noqa: F401  (pins TensorFlow's environment before any command imports it)


def build_parser() -> argparse.ArgumentParser:
    from .commands import data, env, experiments, features, reproduce

    parser = argparse.ArgumentParser(
        prog="mser",
        description="Multimodal emotion recognition in conversation: IEMOCAP-style data, the study's models "
                    "under a sound protocol, multi-seed experiments and reports.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.register(sub)
    features.register(sub)
    experiments.register(sub)
    reproduce.register(sub)
    env.register(sub)
    return parser


def _show_data_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings about the data (``DataWarning``) as one ``warning:`` line on stderr; others as Python prints them."""
    from data_utils.corpus import DataWarning

    if issubclass(category, DataWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


_python_showwarning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    warnings.showwarning = _show_data_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line, recorded in run provenance
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted. A run keeps its complete seeds: rerun the same command to resume it.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
