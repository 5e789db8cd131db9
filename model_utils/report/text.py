"""How reports name things: the data every number came from, settings that are not the study's, markdown that is
safe to render, and file names made from content. No deep-learning backend is imported here.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from data_utils.identity import SYNTHETIC_NAME, SYNTHETIC_WARNING, describe_source

from ..results import RunResult

DIFFERS_MARK = "†"


def data_label(dataset: dict) -> str:
    """How a table names its data (``dataset``: a run's ``data`` record): synthetic data is always called out, and
    "IEMOCAP (Poria et al.)" only for that file itself (:func:`data_utils.identity.describe_source`)."""
    return f"{data_name(dataset)}, {dataset.get('label_scheme', '?')}"


def data_name(dataset: dict) -> str:
    """The name of a run's data, without its label scheme (see :func:`data_label`): never a folder path (a run
    recorded before names existed is named by its file's name)."""
    if dataset.get("synthetic"):
        return SYNTHETIC_NAME
    return dataset.get("name") or Path(str(dataset.get("path", "?"))).name


def settings_note(run: RunResult) -> str:
    """What a run's settings change from the experiment's own, for figure titles: '' or e.g. 'epochs capped at 6'."""
    if "epochs" in run.config.get("differs_from_defaults", []):
        return f"epochs capped at {run.config.get('train_config', {}).get('epochs', '?')}"
    return ""


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")  # '<', '>' and '&' become HTML entities first


def escape_markdown(text) -> str:
    """``text`` (a path, a label, an experiment name: anything that came from data) safe to put in markdown that a
    notebook or nbconvert renders as HTML: HTML special characters become entities and markdown's punctuation is
    backslash-escaped, so it shows as written and never becomes a tag, a link or a code span."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(" ".join(str(text).split()), quote=False))


_UNSAFE_IN_NAMES = re.compile(r"[^A-Za-z0-9._-]+")


def file_stem(*parts: str) -> str:
    """A file name (without suffix) made from what the file shows, safe on every file system and free of brackets,
    ``=`` and commas: ``file_stem("confusion", "timnet-text[filters=16,train.learning_rate=0.0003]")`` is
    ``'confusion_timnet-text--filters-16--train.learning_rate-0.0003'`` (an experiment's overrides become
    ``--key-value``)."""
    stems = []
    for part in parts:
        base, _, overrides = str(part).partition("[")
        pieces = [base] + [item.replace("=", "-") for item in overrides.rstrip("]").split(",") if item]
        stems.append("--".join(_UNSAFE_IN_NAMES.sub("-", p).strip("-") for p in pieces))
    return "_".join(s for s in stems if s)


class Markdown(str):
    """A string that a notebook renders as markdown (and that prints as itself anywhere else)."""

    def _repr_markdown_(self) -> str:
        return str(self)


def describe_data(data) -> str:
    """:func:`data_label` of an ERCDataset, a RunResult, a summary's ``dataset`` dict, or a label already made."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        return data_label(data)
    if hasattr(data, "scheme"):  # ERCDataset
        return data_label({**describe_source(data.source, synthetic=data.synthetic, dialogues=len(data),
                                             corpus=data.corpus),
                           "synthetic": data.synthetic, "label_scheme": data.scheme.name})
    return data_label(data.data)  # RunResult


def run_settings(*, quick: bool = False, epochs: int | None = None, seeds: int | None = None) -> str:
    """A notebook's settings in words, when they are not the full study's ('' when they are): a QUICK smoke run, an
    epoch cap."""
    parts = (["QUICK smoke run (a few experiments, not for citing)"] if quick else []) + \
        ([f"epochs capped at {epochs}"] if epochs else []) + ([f"{seeds} seeds"] if quick and seeds else [])
    return "; ".join(parts)


def data_banner(ds, *, settings: str = "") -> Markdown:
    """A notebook's first output: the data every number below comes from (its name, file, SHA-256 and dialogue
    count), loudly when it is synthetic, and ``settings`` (:func:`run_settings`) when they are not the full study's.
    Every data-derived string is escaped (:func:`escape_markdown`)."""
    labels = ", ".join(map(escape_markdown, ds.class_names))
    facts = (f"label scheme {escape_markdown(ds.scheme.name)} ({labels}); {len(ds.splits['train'])} training "
             f"and {len(ds.splits['test'])} test dialogues, {int(ds.mask.sum())} scored utterances")
    if settings:
        facts += f". Settings: {escape_markdown(settings)}"
    if ds.synthetic:
        return Markdown(f"> **{SYNTHETIC_WARNING}.** Every number, table and figure below comes from the built-in "
                        f"synthetic data ({facts}). Use it to check the pipeline, never to cite.")
    who = describe_source(ds.source, synthetic=False, dialogues=len(ds), corpus=ds.corpus)
    return Markdown(f"Data: **{escape_markdown(who['name'])}**, the file {escape_markdown(ds.source)} (SHA-256 "
                    f"{who['sha256'][:16]}…, {who['dialogues']} dialogues); {facts}.")


def styled(frame, title: str, data, *, precision: int = 4):
    """``frame`` (a DataFrame) for display in a notebook, captioned with ``title`` and the data it came from; every
    cell, label and the caption HTML-escaped (they hold data-derived strings)."""
    return (frame.style.format(precision=precision, na_rep="–", escape="html")
            .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
            .format_index_names(escape="html", axis=0).format_index_names(escape="html", axis=1)
            .set_caption(html.escape(f"{title} — {describe_data(data)}"))
            .set_table_styles([{"selector": "caption", "props": "font-weight: bold; text-align: left;"}]))


def modality_label(modalities) -> str:
    """'all' for text+audio+visual in any order, else the modalities joined with '+'."""
    return "all" if set(modalities) == {"text", "audio", "visual"} else "+".join(modalities)


def evaluation_label(run: RunResult) -> str:
    """What a run scored: 'test split', or its cross-validation ('cv-sessions')."""
    kind = run.config.get("evaluation", {}).get("kind", "test-split")
    return "test split" if kind == "test-split" else kind
