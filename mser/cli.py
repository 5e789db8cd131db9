"""The `mser` command line: `mser --help` lists the commands.

Each command lives in ``mser/commands/`` and imports heavy libraries (TensorFlow) only when it runs, so
`mser data summary` answers in a second.

Every command ends in one of three ways: its output and exit code 0; one ``error:`` line and exit code 1; or, on
Ctrl-C or SIGTERM (what a batch scheduler sends at its time limit; both end the command the same way, with
everything it started), one line saying what was kept and exit code 130. A closed pipe (``mser … | head``) ends it
quietly.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings

INTERRUPTED = "interrupted."


def build_parser() -> argparse.ArgumentParser:
    from .commands import data, docs, env, experiments, features, predict, reproduce, robustness

    parser = argparse.ArgumentParser(
        prog="mser",
        description="Multimodal emotion recognition in conversation: IEMOCAP-style data, the study's models "
                    "under a sound protocol, multi-seed experiments and reports.",
    )
    parser.set_defaults(interrupted="nothing was written.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.register(sub)
    features.register(sub)
    experiments.register(sub)
    predict.register(sub)
    robustness.register(sub)
    reproduce.register(sub)
    env.register(sub)
    docs.register(sub)
    return parser


class _DataWarnings:
    """Warnings about the data (``DataWarning``) as one ``warning:`` line on stderr, each message once however
    often it is raised; others as Python prints them."""

    def __init__(self, python_showwarning):
        self._python, self._seen = python_showwarning, set()

    def __call__(self, message, category, filename, lineno, file=None, line=None):
        from data_utils.corpus import DataWarning

        if not issubclass(category, DataWarning):
            return self._python(message, category, filename, lineno, file, line)
        text = " ".join(str(message).split())
        if text not in self._seen:
            self._seen.add(text)
            print(f"warning: {text}", file=sys.stderr)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    showwarning = warnings.showwarning
    warnings.showwarning = _DataWarnings(showwarning)
    args = None
    try:
        import model_utils  # noqa: F401  (pins TensorFlow's environment before any command imports it)

        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv  # the command line, recorded in run provenance
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        hint = getattr(args, "interrupted", "nothing was written.")
        print(f"\n{INTERRUPTED} {hint}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`| head`): nothing more to say, to anyone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    finally:
        warnings.showwarning = showwarning
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
