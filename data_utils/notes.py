"""What the loader tells a user once: which layout a file was read as, which label scheme ``'auto'`` chose.

A note is one ``note: …`` line on stderr, printed once per process whatever how often the data are read (a
notebook that reloads, ``mser select`` over several experiments). It is information, not a warning: nothing is
wrong. ``MSER_NOTES=0`` silences notes.
"""
from __future__ import annotations

import os
import sys

_said: set[str] = set()


def note(message: str) -> None:
    """Print ``message`` as one ``note:`` line on stderr, unless this process printed it before."""
    text = " ".join(str(message).split())
    if text in _said or os.environ.get("MSER_NOTES", "1") == "0":
        return
    _said.add(text)
    print(f"note: {text}", file=sys.stderr, flush=True)
