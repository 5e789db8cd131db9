"""The notebooks: stored without outputs, and they run top to bottom (papermill) on small synthetic data.

The three main notebooks run inside ``mser reproduce --quick`` on 'synthetic-small' (papermill fails on any cell
error); the archive notebook, which reproduce does not run, runs on its own with tiny parameters.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from conftest import TF_LOG
from data_utils.identity import SYNTHETIC_WARNING

REPO = Path(__file__).resolve().parents[1]
MAIN = ("1_timnet", "2_exploratory_analysis", "3_multimodal_model")
ARCHIVE = REPO / "archive" / "upstream_flaws.ipynb"
NOTEBOOKS = [REPO / "notebooks" / f"{name}.ipynb" for name in MAIN] + [ARCHIVE]
DEFAULTS = {"DATA": "synthetic", "QUICK": False, "SEEDS": 3, "EPOCHS": None, "REPORTS": None}
# Under pytest (this variable set), ipykernel does not forward what C++ writes to descriptors 1 and 2 into the
# notebook; unset, the kernel runs as it does for users, so the tests see what their notebooks get.
KERNEL_HIDES_FD_OUTPUT = "PYTEST_CURRENT_TEST"


def _parameters_cell(nb) -> str:
    tagged = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters' (papermill injects after it)"
    return tagged[0].source


def _parameters(nb) -> dict:
    """The literal assignments of the notebook's one cell tagged 'parameters' (``A, B = 1, 2`` counts as two)."""
    found = {}
    for node in ast.parse(_parameters_cell(nb)).body:
        if isinstance(node, ast.Assign):
            target, value = node.targets[0], ast.literal_eval(node.value)
            if isinstance(target, ast.Tuple):
                found.update(zip((t.id for t in target.elts), value))
            else:
                found[target.id] = value
    return found


def _errors(nb) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "error"]


def _tf_logs(nb) -> list[str]:
    """TensorFlow C++ log lines among the notebook's stderr outputs (the red blocks of the executed notebook and of
    its HTML)."""
    return [line for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if o.output_type == "stream" and o.name == "stderr" for line in o.text.splitlines() if TF_LOG.search(line)]


def _first_output(nb) -> str:
    """The text of the first rich output (the data banner)."""
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.output_type in ("execute_result", "display_data"):
                return o.data.get("text/markdown", o.data.get("text/plain", ""))
    return ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_and_with_the_common_parameters(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is None and c.outputs == [] for c in code), f"{path.name} has outputs"
    assert nb.cells[0].cell_type == "markdown"
    params = _parameters(nb)
    assert {k: params.get(k, "missing") for k in DEFAULTS} == DEFAULTS
    import papermill

    assert set(params) == set(papermill.inspect_notebook(str(path)))  # papermill sees every parameter


def test_archive_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    import papermill

    monkeypatch.delenv(KERNEL_HIDES_FD_OUTPUT)
    reports = tmp_path / "reports"
    out = tmp_path / "upstream_flaws.ipynb"
    papermill.execute_notebook(
        str(ARCHIVE), str(out), cwd=str(ARCHIVE.parent), kernel_name="python3", progress_bar=False,
        parameters={"DATA": "synthetic-small", "QUICK": True, "SEEDS": 2, "EPOCHS": 1, "REPORTS": str(reports),
                    "EXPERIMENT": "cnn-text", "RIVAL": "cnn-all", "WORKERS": 1})
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb)
    assert not _tf_logs(nb)
    assert SYNTHETIC_WARNING in _first_output(nb)
    from model_utils.report.notebook import indexed_tables

    tables = [p.name for p in indexed_tables(reports / "tables")]
    assert tables == ["leak-overlap.md", "leak-gap.md", "pad-class.md", "seed-spread.md", "single-runs.md"]
    assert all((reports / "tables" / t).with_suffix(".csv").is_file() for t in tables)
    assert "SYNTHETIC" in (reports / "tables" / "pad-class.md").read_text()
    assert (reports / "figures" / "upstream_leak.png").is_file()


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    """``reproduce(quick=True)`` end to end on 'synthetic-small', with the notebooks' seeds and epochs cut to 1 and
    2 (model building and tracing dominate at this size, so QUICK's 2 seeds would double the time)."""
    import mser.reproduce as r

    parameters = r.parameters

    def tiny(data, **kwargs):
        return {**parameters(data, **kwargs), "SEEDS": 1, "EPOCHS": 2}

    import contextlib
    import io

    reports, log = tmp_path_factory.mktemp("reproduce") / "r", io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(log):
        mp.setattr(r, "parameters", tiny)
        mp.delenv(KERNEL_HIDES_FD_OUTPUT)
        results = r.reproduce(quick=True, data="synthetic-small", reports=reports, try_download=False)
    return reports, results, log.getvalue()


@pytest.mark.slow
def test_reproduce_quick_end_to_end(reproduced):
    from mser.reproduce import SYNTHETIC_BANNER

    reports, results, log = reproduced
    assert results == reports / "results.md"
    text = results.read_text()
    assert SYNTHETIC_BANNER in text
    tables = [t.stem for t in sorted((reports / "tables").glob("*.md"))]
    for name in ("timnet", "exploratory", "final-models", "significance", "your-model"):
        assert name in tables, f"no table {name}.md"
    order = [text.index((reports / "tables" / f"{t}.md").read_text().strip()) for t in
             ("timnet", "timnet-per-class-F1", "exploratory", "exploratory-grid", "final-models", "your-model")]
    assert order == sorted(order)  # the notebooks' order, and each notebook's own
    for table in tables:
        md = (reports / "tables" / f"{table}.md").read_text()
        assert md.strip() in text and "SYNTHETIC" in md
        assert (reports / "tables" / f"{table}.csv").is_file(), f"no CSV beside {table}.md"
        assert not set("[]=,") & set(table)
    figures = [f.name for f in (reports / "figures").glob("*.png")]
    assert "confusion_timnet-text.png" in figures and "history_multimodal.png" in figures
    assert {"robustness.png", "cross-attention.png"} <= set(figures)  # notebook 3's robustness and attention
    assert "robustness" in tables and "modality-dropout" in tables and "text-model-for-new-conversations" in tables
    for run in (reports / "runs").iterdir():  # every run directory carries its model card, naming its data
        card = (run / "MODEL_CARD.md").read_text()
        assert "SYNTHETIC data — not IEMOCAP results" in card and "synthetic:synthetic-small" in card
    assert any(f.startswith("history_") and "exploratory" not in f for f in figures)
    assert not [f for f in figures if set("[]=,") & set(f)]
    for name in MAIN:
        html = (reports / f"{name}.html").read_text()
        assert html and not TF_LOG.search(html)
    assert any((reports / "figures").glob("confusion_*.png"))


@pytest.mark.slow
def test_quick_trains_in_the_kernels_two_notebooks_at_a_time(reproduced):
    import json

    from mser.reproduce import parameters

    reports, _, log = reproduced
    assert parameters("synthetic", quick=True, reports=reports)["WORKERS"] == 1
    assert "WORKERS" not in parameters("synthetic", quick=False, reports=reports)  # full: the notebooks' pools
    profile = json.loads((reports / "profile.json").read_text())
    assert set(profile["notebooks"]) == set(MAIN) and len(profile["workers"]) == len(MAIN)  # one kernel each
    assert profile["overall"]["lanes"] == 2  # two kernels trained at the same time
    assert log.index("[3/3] running") < log.index("[2/3] running")  # the longest notebook starts first


@pytest.mark.slow
@pytest.mark.parametrize("name", MAIN)
def test_notebook_ran_cleanly_under_reproduce(reproduced, name):
    reports, _, log = reproduced
    nb = nbformat.read(reports / f"{name}.ipynb", as_version=4)
    assert f"{name}: running: " in log  # progress is relayed while the notebook runs
    assert re.search(rf"{name}: \[1/\d+\] \S+: test macro-F1 \d\.\d{{4}}", log)
    assert not _errors(nb) and not _tf_logs(nb)
    assert all(c.execution_count is not None for c in nb.cells if c.cell_type == "code")
    assert SYNTHETIC_WARNING in _first_output(nb)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "QUICK = True" in injected[0].source


def _run_notebook(path: Path, tmp_path: Path, **parameters):
    import papermill

    out = tmp_path / path.name
    papermill.execute_notebook(str(path), str(out), cwd=str(path.parent), kernel_name="python3",
                               progress_bar=False, parameters={"DATA": "synthetic-small", "QUICK": True, "SEEDS": 1,
                                                               "EPOCHS": 1, "WORKERS": 1, **parameters})
    nb = nbformat.read(out, as_version=4)
    assert not _errors(nb)
    return nb


def _text(nb) -> str:
    """Everything the executed notebook showed: streams, and the plain, markdown and HTML forms of rich outputs."""
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.output_type == "stream":
                parts.append(o.text)
            elif o.output_type in ("execute_result", "display_data"):
                parts += [o.data.get(kind, "") for kind in ("text/plain", "text/markdown", "text/html")]
    return "\n".join(parts)


def test_notebook_1_runs_with_the_overrides_its_parameters_cell_gives_as_example(tmp_path, monkeypatch):
    """The example in the comment above OVERRIDES, as written, runs; and the model's code is on the page."""
    monkeypatch.delenv(KERNEL_HIDES_FD_OUTPUT)
    path = NOTEBOOKS[0]
    example = re.search(r"# OVERRIDES.*?e\.g\. (\[[^\]]*\])", _parameters_cell(nbformat.read(path, as_version=4)),
                        re.DOTALL).group(1)
    overrides = ast.literal_eval(example)
    assert overrides, "the parameters cell gives no OVERRIDES example"
    reports = tmp_path / "reports"
    nb = _run_notebook(path, tmp_path, OVERRIDES=overrides, REPORTS=str(reports))
    shown = _text(nb)
    assert "def timnet(" in shown and "class TimNet(" in shown  # the builder and its layer, from the package
    assert "Total params" in shown  # model.summary()
    keys = [o.partition("=")[0] for o in overrides]
    runs = [p.name for p in (reports / "runs").iterdir()]
    assert len(runs) == 1 and runs[0].startswith("timnet-text--") and all(f"--{k}=" in runs[0] for k in keys)
    table = (reports / "tables" / "timnet.md").read_text()
    assert all(f"{k}=" in table.replace("\\", "") for k in keys)  # the † note names what differs


def test_notebook_3_runs_with_only_a_text_model_and_shows_our_model(tmp_path, monkeypatch):
    """ONLY without multimodal and multimodal-seed: the error analysis falls back to the run there is."""
    monkeypatch.delenv(KERNEL_HIDES_FD_OUTPUT)
    nb = _run_notebook(NOTEBOOKS[2], tmp_path, ONLY=["text-bilstm"])
    shown = _text(nb)
    assert "def multimodal(" in shown and "Total params" in shown
    assert "text-bilstm: most frequent test confusions" in shown
