"""`make reproduce`: run the three notebooks headless into ``reports/`` and collect every table in results.md.

Data: the real pickle when it is at ``dataset/iemocap/raw/IEMOCAP_features_raw.pkl`` (or can be downloaded),
otherwise the built-in synthetic data, with a banner in every output. The data are loaded once, and the reports
folder checked, before anything is moved or a notebook started. A previous ``reports/`` is never deleted: it is kept
beside the new one as ``reports.<when it was last written>/``.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from pathlib import Path

from data_utils.download import DEFAULT_PATH, DownloadError, download
from data_utils.fileio import check_output_path, write_text
from data_utils.identity import SYNTHETIC_NAME, SYNTHETIC_WARNING, describe_source
from data_utils.labels import DEFAULT_SCHEME
from data_utils.synthetic import PRESETS

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = ("1_timnet", "2_exploratory_analysis", "3_multimodal_model")
SYNTHETIC_BANNER = (f"> **{SYNTHETIC_WARNING}.** The real IEMOCAP feature pickle was not available, so every "
                    "number below comes from the built-in synthetic data.")


def resolve_data(data: str | None, *, try_download: bool = True) -> str:
    """An explicit choice, else the real pickle if present or downloadable, else 'synthetic'."""
    if data:
        return data if data in PRESETS else str(Path(data).resolve())
    real = (REPO / DEFAULT_PATH).resolve()
    if real.is_file():
        return str(real)
    if try_download:
        _say("The real IEMOCAP pickle is not in dataset/iemocap/raw/; trying to download it …")
        try:
            return str(download(real, timeout=30).resolve())
        except DownloadError as e:
            _say("Download failed: " + "; ".join(f"{url}: {reason}" for url, reason in e.failures))
        except OSError as e:
            _say(f"Download failed: {e}")
    _say(f"Using the built-in {SYNTHETIC_NAME}: the reports will say so on every page.")
    return "synthetic"


def parameters(data: str, *, quick: bool, reports: Path) -> dict:
    """The papermill parameters every notebook takes (see each notebook's parameters cell). QUICK trains in the
    notebook's kernel (WORKERS 1), and :func:`reproduce` then runs two notebooks at once."""
    return {"DATA": data, "QUICK": quick, "SEEDS": 2 if quick else 3, "EPOCHS": 6 if quick else None,
            "REPORTS": str(reports), **({"WORKERS": 1} if quick else {})}


# Relative run time of each notebook in QUICK (measured: 53, 34 and 66 s on 2 cores): the longest starts first.
_WEIGHT = {"1_timnet": 53, "2_exploratory_analysis": 34, "3_multimodal_model": 66}


def reproduce(*, quick: bool = False, data: str | None = None, reports: str | Path = REPO / "reports",
              notebooks: tuple[str, ...] = NOTEBOOKS, try_download: bool = True, ray: str | None = None) -> Path:
    """Run ``notebooks`` headless into ``reports`` and collect their tables in ``results.md``; where the time went
    goes to ``profile.md`` and ``profile.json``. ``ray``: a Ray address ('auto', host:port, or 'local'): the
    notebooks' runs go to that cluster (``run_many(backend='ray')``, through ``MSER_RAY_ADDRESS``)."""
    import nbformat
    import papermill
    from nbconvert import HTMLExporter

    from data_utils.dataset import load_dataset

    reports = Path(reports).resolve()
    check_output_path(reports, directory=True, option="--reports")
    if _has_contents(reports):
        check_output_path(_kept_name(reports), directory=True, option="--reports")  # the old one moves there
    data = resolve_data(data, try_download=try_download)
    ds = load_dataset(data, scheme=DEFAULT_SCHEME)  # a bad pickle fails here, in one line, before anything is moved
    identity = describe_source(ds.source, synthetic=ds.synthetic, dialogues=len(ds), corpus=ds.corpus)
    _fresh_reports_dir(reports)
    params = parameters(data, quick=quick, reports=reports)
    os.environ.setdefault("MSER_PROGRESS", "lines")  # executed notebooks are pages: lines, no progress bars
    if ray:
        os.environ["MSER_RAY_ADDRESS"] = ray  # the notebook kernels inherit it; run_many reads it
        params.pop("WORKERS", None)  # the cluster's lanes, not the kernel, train
    started = time.perf_counter()
    walls = {}

    def run(i: int, name: str) -> None:
        _say(f"[{i}/{len(notebooks)}] running notebooks/{name}.ipynb "
             f"({'quick' if quick else 'full'} settings, data: {SYNTHETIC_NAME if data in PRESETS else data})")
        t0 = time.perf_counter()
        executed = reports / f"{name}.ipynb"
        papermill.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(executed), parameters=params,
                                   cwd=str(REPO / "notebooks"), kernel_name="python3", progress_bar=False,
                                   log_output=False, stdout_file=_Progress(name))
        html, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
        write_text(reports / f"{name}.html", html, overwrite=True)
        walls[name] = round(time.perf_counter() - t0, 1)
        _say(f"[{i}/{len(notebooks)}] {name} done in {walls[name]:.0f} s → reports/{name}.html")

    numbered = list(enumerate(notebooks, 1))
    try:
        if params.get("WORKERS") == 1 and len(notebooks) > 1:
            # Each kernel trains in itself: two notebooks side by side keep both cores busy, longest first
            # (QUICK: where pools of worker processes would cost more to start than the runs take).
            pool = ThreadPoolExecutor(max_workers=2)
            futures = []
            try:
                futures = [pool.submit(run, i, name)
                           for i, name in sorted(numbered, key=lambda x: -_WEIGHT.get(x[1], 0))]
                for future in as_completed(futures):
                    future.result()  # a failed notebook ends the command (below: the others stop too)
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)  # the queued notebooks never start
                # a notebook thread may start its kernel just after a stop: stop again until every thread is done
                while wait([f for f in futures if not f.cancelled()], timeout=1.0).not_done:
                    _stop_kernels()
                raise
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
            walls = {name: walls[name] for name in notebooks}
        else:
            for i, name in numbered:
                run(i, name)
    except BaseException:  # Ctrl-C, SIGTERM (mser.cli raises KeyboardInterrupt for it) or a failed notebook
        _stop_kernels()
        raise
    write_profile(reports, walls, data=data)
    results = collect_results(reports, data=identity, quick=quick, seconds=time.perf_counter() - started)
    _say(f"All done in {time.perf_counter() - started:.0f} s. Results: {results}")
    return results


def write_profile(reports: Path, notebooks: dict[str, float], *, data: str) -> Path:
    """reports/profile.json and profile.md: notebook wall times and where the runs' time went
    (:mod:`model_utils.run.profiling`); reports/costs.json: the seconds per seed the scheduler orders jobs by."""
    import os

    from model_utils.run.profiling import profile, profile_markdown, write_costs

    report = profile(reports / "runs", notebooks)
    report["data"] = "synthetic" if data in PRESETS else data
    write_text(reports / "profile.json", json.dumps(report, indent=2) + "\n", overwrite=True)
    where = SYNTHETIC_NAME if data in PRESETS else data
    write_costs(reports / "runs", reports / "costs.json",
                about=f"seconds per seed on {where}, {os.cpu_count()} cores, one TensorFlow thread per worker "
                      f"(mser reproduce, {time.strftime('%Y-%m-%d')})")
    return write_text(reports / "profile.md", profile_markdown(report, title=f"Where the time went ({where})"),
                      overwrite=True)


def collect_results(reports: Path, *, data: dict, quick: bool, seconds: float) -> Path:
    """reports/results.md: every table the notebooks wrote to reports/tables/, headed by the data used (``data``:
    :func:`data_utils.identity.describe_source` of it: name, file, SHA-256, dialogue count)."""
    from model_utils.report import escape_markdown
    from model_utils.report.notebook import indexed_tables

    lines = ["# Results", ""]
    if data["name"] == SYNTHETIC_NAME:
        lines += [SYNTHETIC_BANNER, ""]
    lines += [f"Data: **{escape_markdown(data['name'])}** (file {escape_markdown(data['file'])}, SHA-256 "
              f"{data['sha256']}, {data['dialogues']} dialogues).", ""]
    lines += [f"Settings: {'QUICK (smoke run: few epochs, 2 seeds — not for citing)' if quick else 'full'}; "
              f"wall time {seconds / 60:.1f} min. Protocol: dialogue-level validation split held out from the "
              "training dialogues for early stopping on macro-F1; test scored once, real utterances only; "
              "mean ± std over seeds.", ""]
    for table in indexed_tables(reports / "tables", NOTEBOOKS):  # each notebook's tables in the order it wrote them
        lines += [table.read_text().rstrip(), ""]
    lines += ["Figures: `reports/figures/`. Executed notebooks: `reports/*.ipynb` and `reports/*.html`.", ""]
    return write_text(reports / "results.md", "\n".join(lines), overwrite=True)


def _stop_kernels(grace: float = 5.0) -> None:
    """End every process this one started (the notebooks' kernels and their training workers): SIGTERM, then
    SIGKILL after ``grace`` seconds. The kernels run in sessions of their own, so Ctrl-C never reaches them."""
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=grace)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def _fresh_reports_dir(reports: Path) -> None:
    """reports/ belongs to this command: a previous one is renamed (:func:`_kept_name`), never mixed in or deleted."""
    if _has_contents(reports):
        kept = _kept_name(reports)
        reports.rename(kept)
        _say(f"Kept the previous {reports.name}/ as {kept.name}/ (nothing is deleted).")
    (reports / "tables").mkdir(parents=True, exist_ok=True)
    (reports / "figures").mkdir(parents=True, exist_ok=True)


def _has_contents(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _kept_name(reports: Path) -> Path:
    """Where a previous ``reports/`` goes: ``reports.<YYYY-MM-DD_HH-MM-SS>`` (local time of its newest entry), with
    ``-2``, ``-3`` … appended if that name is taken."""
    newest = max(p.stat().st_mtime for p in [reports, *reports.iterdir()])
    stem = f"{reports.name}.{time.strftime('%Y-%m-%d_%H-%M-%S', time.localtime(newest))}"
    kept, n = reports.with_name(stem), 2
    while kept.exists():
        kept, n = reports.with_name(f"{stem}-{n}"), n + 1
    return kept


class _Progress:
    """Relays a notebook's progress lines ("running: …", "[3/17] rnn-text: test macro-F1 …") as they are printed."""

    def __init__(self, notebook: str):
        from model_utils.run.progress import RELAYED  # the runner's own line formats

        self.notebook, self.line = notebook, RELAYED

    def write(self, text: str) -> None:
        for line in text.splitlines():
            if self.line.match(line):
                _say(f"      {self.notebook}: {line}")

    def flush(self) -> None:
        pass


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
