"""What the notebooks need beside tables and figures: where their outputs go (:class:`ReportDir`, and the order
``mser reproduce`` collects the tables in), which experiments a notebook runs (:func:`select_experiments`), and the
code of a model shown on the page from the one place it lives (:func:`show_code`, :func:`show_model`).
"""
from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .tables import frame_to_markdown, summary_frame, to_markdown
from .text import file_stem, styled

TABLES, FIGURES, RUNS = "tables", "figures", "runs"
INDEX_PREFIX = "index-"  # tables/index-<notebook>.json: the order a notebook wrote its tables in


class ReportDir:
    """Where a notebook writes its outputs: ``root/tables/<name>.md`` with ``<name>.csv`` beside each,
    ``root/figures/*.png`` and run directories ``root/runs/<name>/``. With ``root=None`` (a notebook's
    ``REPORTS=None``) nothing is written anywhere.

    ``notebook`` names the writer (e.g. ``'1_timnet'``): the tables it writes are listed, in the order it wrote
    them, in ``tables/index-<notebook>.json``, which is how ``mser reproduce`` orders them in ``results.md``
    (:func:`indexed_tables`). Table names are made file-safe from their content (:func:`~.text.file_stem`).
    """

    def __init__(self, root: str | Path | None, notebook: str = "tables"):
        self.root = None if root is None else Path(root)
        self.notebook = file_stem(notebook)
        self._written: list[str] = []

    def _sub(self, name: str) -> Path | None:
        return None if self.root is None else self.root / name

    @property
    def figures(self) -> Path | None:
        return self._sub(FIGURES)

    @property
    def runs(self) -> Path | None:
        return self._sub(RUNS)

    def table(self, name: str, frame: pd.DataFrame, *, markdown: str, index: bool = False) -> Path | None:
        """Write ``markdown`` to ``tables/<name>.md`` and ``frame`` (the numbers behind it) to ``tables/<name>.csv``;
        the markdown file's path, or None when nothing is written. Rewriting a table (a cell run again) is fine."""
        if self.root is None:
            return None
        from data_utils.fileio import frame_csv, write_json, write_text

        stem = file_stem(name)
        folder = self.root / TABLES
        write_text(folder / f"{stem}.csv", frame_csv(frame, index=index), overwrite=True)
        path = write_text(folder / f"{stem}.md", markdown, overwrite=True)
        if stem not in self._written:
            self._written.append(stem)
        write_json(folder / f"{INDEX_PREFIX}{self.notebook}.json", {"notebook": self.notebook,
                                                                     "tables": self._written}, overwrite=True)
        return path

    def runs_table(self, name: str, table: pd.DataFrame, *, title: str):
        """Write a :func:`~.tables.runs_table` (markdown :func:`~.tables.to_markdown`, CSV of every column) and
        return it :func:`~.text.styled` for display (:func:`~.tables.summary_frame`), under the same title."""
        self.table(name, table, markdown=to_markdown(table, title=title))
        return styled(summary_frame(table), title, "; ".join(table["data"].unique()) if len(table) else "no runs")

    def frame(self, name: str, frame: pd.DataFrame, *, title: str, data, index: bool = True):
        """Write ``frame`` as ``tables/<name>.md`` (:func:`~.tables.frame_to_markdown`) and ``.csv``, and return it
        :func:`~.text.styled` for display, under the same title."""
        self.table(name, frame, markdown=frame_to_markdown(frame, title=title, data=data, index=index), index=index)
        return styled(frame, title, data)


def indexed_tables(folder: str | Path, notebooks: Iterable[str] = ()) -> list[Path]:
    """The markdown tables of a reports ``tables/`` folder in report order: those of each of ``notebooks`` in the
    order it wrote them (its index, :class:`ReportDir`), then those of any other index, then any table no index
    lists, by name."""
    folder = Path(folder)
    order = [file_stem(n) for n in notebooks]
    indexes = {p.stem[len(INDEX_PREFIX):]: p for p in folder.glob(f"{INDEX_PREFIX}*.json")}
    found: list[Path] = []
    for notebook in order + sorted(set(indexes) - set(order)):
        if notebook not in indexes:
            continue
        for stem in json.loads(indexes[notebook].read_text(encoding="utf-8")).get("tables", []):
            path = folder / f"{file_stem(stem)}.md"
            if path.is_file() and path not in found:
                found.append(path)
    return found + sorted(p for p in folder.glob("*.md") if p not in found)


def select_experiments(candidates, *, quick_subset=None, limit: int | None = None, only=None) -> list[str]:
    """Which experiments a notebook runs: ``candidates`` (names or Experiments, in order), cut to
    ``quick_subset`` if given (QUICK mode; names not among the candidates are ignored) and to the first
    ``limit``, then to ``only``.

    ``only`` is a list of names (one name alone is taken as such a list); a name in it that is no experiment at all
    raises ``KeyError`` with the closest names (:func:`~model_utils.experiments.get_experiment`: a typo must not
    silently run nothing).
    """
    from ..experiments import get_experiment

    names = [c if isinstance(c, str) else c.name for c in candidates]
    if quick_subset is not None:
        names = [n for n in names if n in set(quick_subset)]
    names = names[:limit]
    if only is not None:
        only = [only] if isinstance(only, str) else list(only)
        for name in only:
            get_experiment(name)
        names = [n for n in names if n in set(only)]
    return names


def source_of(*objects: str | Callable) -> str:
    """The source code of ``objects`` (functions, classes, or registered architecture names, which stand for their
    builders), as it lives in the package: what a notebook shows so a reader sees the model, never a copy."""
    from ..architectures import get_builder

    parts = []
    for obj in objects:
        target = get_builder(obj) if isinstance(obj, str) else obj
        try:
            parts.append(textwrap.dedent(inspect.getsource(target)).rstrip())
        except (OSError, TypeError) as e:
            raise ValueError(f"the source of {getattr(target, '__name__', target)!r} cannot be read ({e})") from e
    return "\n\n\n".join(parts) + "\n"


def show_code(*objects: str | Callable):
    """:func:`source_of` ``objects``, highlighted in a notebook (``IPython.display.Code``), plain text elsewhere."""
    text = source_of(*objects)
    try:
        from IPython.display import Code
    except ImportError:  # outside Jupyter
        return text
    return Code(text, language="python")


def show_model(experiment, train, *, line_length: int = 110) -> str:
    """Build ``experiment`` (a name or an :class:`~model_utils.config.Experiment`) for data shaped like ``train`` (an
    ERCDataset; its widths, classes and speakers) and print ``model.summary()``: its layers, output shapes and
    parameter counts. Returns the summary text. Nothing is trained."""
    import keras

    from ..architectures import build_for
    from ..run.plan import resolve_experiment

    exp = resolve_experiment(experiment)
    keras.backend.clear_session()
    lines: list[str] = []
    try:
        build_for(exp, train).summary(line_length=line_length, print_fn=lambda line, **_: lines.append(line))
    finally:
        keras.backend.clear_session()
    text = "\n".join(lines)
    print(text)
    return text
