"""model_utils.report (tables, comparisons and the notebook helpers) and the notebook plots, on RunResults built without training."""
from __future__ import annotations

import dataclasses
import zlib

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from data_utils.dataset import load_dataset  # noqa: E402
from model_utils import report  # noqa: E402
from model_utils.report import plots, text  # noqa: E402
from model_utils.experiments import EXPERIMENTS  # noqa: E402
from model_utils.metrics import METRICS, evaluate, paired_bootstrap  # noqa: E402
from model_utils.results import RunResult, SeedResult, read_run, write_seed, write_summary  # noqa: E402

DATA = {"path": "synthetic-small", "synthetic": True, "label_scheme": "merged4"}


@pytest.fixture(scope="module")
def ds():
    return load_dataset("synthetic-small")


def fake_run(name: str, ds, accuracy: float, seeds=(0, 1), data=DATA) -> RunResult:
    """A RunResult whose seeds predict the true class with probability about ``accuracy``, else a random one."""
    test = ds.subset("test")
    result = RunResult(EXPERIMENTS[name], dict(data), test.class_names, test.labels, test.mask, test.dialogue_ids,
                       test=test)
    for seed in seeds:
        rng = np.random.default_rng(zlib.crc32(f"{name}/{seed}".encode()))
        noise = rng.integers(0, test.num_classes, test.labels.shape)
        pred = np.where(rng.random(test.labels.shape) < accuracy, test.labels, noise)
        pred = np.where(test.mask, pred, -1)
        logits = 3 * np.eye(test.num_classes)[np.maximum(pred, 0)] + rng.random(pred.shape + (test.num_classes,))
        probs = (np.exp(logits) * test.mask[..., None]).astype(np.float32)
        history = [{"epoch": e, "loss": 1.0 / e, "val_loss": 1.1 / e, **{f"val_{m}": 0.2 + 0.05 * e for m in METRICS}} for e in (1, 2, 3)]
        result.seeds.append(SeedResult(seed, evaluate(test.labels, pred, test.mask, test.class_names), history,
                                       2, 3, 1.5, pred, probs / probs.sum(-1, keepdims=True).clip(1e-9),
                                       {m: history[1][f"val_{m}"] for m in METRICS}))
    return result


@pytest.fixture(scope="module")
def runs(ds):
    spec = {"cnn-text": 0.7, "cnn-audio": 0.5, "cnn-all": 0.75, "rnn-text": 0.8, "rnn-all": 0.6,
            "early-fusion-text": 0.6, "early-fusion": 0.7, "late-fusion-repr": 0.65}
    return {n: fake_run(n, ds, a) for n, a in spec.items()}


# ------------------------------------------------------------------------------------------------ data labels

def test_banner_is_loud_on_synthetic_data_and_names_the_source_otherwise(ds):
    banner = report.data_banner(ds)
    assert text.SYNTHETIC_WARNING in banner and banner._repr_markdown_() == str(banner)
    real = report.data_banner(dataclasses.replace(ds, synthetic=False, source="/data/iemocap.pkl"))
    assert "SYNTHETIC" not in real and "/data/iemocap.pkl" in real


def test_describe_data_accepts_datasets_runs_dicts_and_strings(ds, runs):
    for x in (ds, runs["cnn-text"], DATA):
        assert report.describe_data(x) == "SYNTHETIC data (not IEMOCAP), merged4"
    assert report.describe_data("anything") == "anything"


# ------------------------------------------------------------------------------------------------ tables

def test_runs_table_adds_group_family_architecture_and_modality(runs):
    table = report.runs_table(runs)
    assert list(table["experiment"]) == list(runs)
    row = table.set_index("experiment").loc["cnn-all"]
    assert (row["group"], row["family"], row["architecture"], row["modality"]) == \
        ("exploratory", "cnn", "cnn", "all")
    assert table.set_index("experiment").loc["late-fusion-repr", "modality"] == "all"
    assert text.modality_label(("audio", "text")) == "audio+text"
    # the existing markdown writer still accepts it
    assert "| cnn-all |" in report.to_markdown(table)


def test_summary_frame_matches_to_markdown_cells_and_keeps_deltas(runs):
    table = report.with_delta(report.runs_table(runs), "cnn-text")
    frame = report.summary_frame(table)
    r = table.set_index("experiment").loc["rnn-text"]
    assert frame.loc["rnn-text", "Macro-F1"] == f"{r['macro_f1']:.4f} ± {r['macro_f1_std']:.4f}"
    assert frame.loc["rnn-text", "Macro-F1"] in report.to_markdown(table)
    delta = "Δ Macro-F1 vs cnn-text"
    assert frame.loc["cnn-text", delta] == "+0.0000"
    assert float(frame.loc["rnn-text", delta]) == pytest.approx(r["macro_f1"] - runs["cnn-text"].mean(), abs=1e-4)
    with pytest.raises(ValueError, match="reference"):
        report.with_delta(table, "transformer-text")


def test_styled_and_markdown_tables_carry_their_title_and_data(ds):
    frame = pd.DataFrame({"a": [0.123456, np.nan], "b": ["x", "y"]}, index=pd.Index(["r1", "r2"], name="row"))
    html = report.styled(frame, "My table", ds).to_html()
    assert "My table — SYNTHETIC data (not IEMOCAP), merged4" in html and "0.1235" in html and "–" in html
    md = report.frame_to_markdown(frame, title="My table", data=ds)
    assert md.splitlines()[:3] == ["### My table", "", "Data: **SYNTHETIC data (not IEMOCAP), merged4**."]
    assert "| row | a | b |" in md and "| r1 | 0.1235 | x |" in md and "| r2 | – | y |" in md


def test_arch_modality_grid_orders_rows_and_columns_and_leaves_gaps(runs):
    table = report.runs_table(runs)
    grid = report.arch_modality_grid(table)
    assert list(grid.index) == ["cnn", "rnn", "early_fusion", "late_fusion_repr"]
    assert list(grid.columns) == ["text", "audio", "all"]
    assert grid.loc["rnn", "text"] == pytest.approx(runs["rnn-text"].mean())
    assert np.isnan(grid.loc["rnn", "audio"]) and np.isnan(grid.loc["late_fusion_repr", "text"])
    std = report.arch_modality_grid(table, std=True)
    assert std.loc["cnn", "all"] == pytest.approx(table.set_index("experiment").loc["cnn-all", "macro_f1_std"])
    with pytest.raises(ValueError, match="share"):
        report.arch_modality_grid(pd.concat([table, table.iloc[:1]]))


def test_per_class_report_averages_the_seeds(runs):
    r = runs["cnn-text"]
    per_class = report.per_class_report(r)
    assert list(per_class.index) == list(r.class_names)
    c = r.class_names[1]
    f1 = [s.metrics["per_class"][c]["f1"] for s in r.seeds]
    assert per_class.loc[c, "f1"] == pytest.approx(np.mean(f1))
    assert per_class.loc[c, "f1_std"] == pytest.approx(np.std(f1, ddof=1))
    assert per_class.loc[c, "support"] == r.seeds[0].metrics["per_class"][c]["support"]
    f1_table = report.per_class_f1(runs)
    assert f1_table.shape == (len(runs), len(r.class_names))
    assert f1_table.loc["cnn-text", c] == pytest.approx(per_class.loc[c, "f1"])


def test_best_by_family_and_fusion_gains(runs):
    best = report.best_by(runs, "family")
    for family, result in best.items():
        assert result.mean() == max(r.mean() for r in runs.values() if r.experiment.family == family)
    gains = report.fusion_gains(report.runs_table(runs))
    fused = {n for n, r in runs.items() if r.experiment.fused and r.experiment.family in {"cnn", "rnn", "bilstm"}}
    assert set(gains.index) == fused  # every fused run of a family that has unimodal runs
    for name in ("early-fusion", "late-fusion-repr"):
        g = gains.loc[name]
        assert g["family"] == "bilstm" and g["best_unimodal"] == "early-fusion-text"
        assert g["fused"] == pytest.approx(runs[name].mean())
        assert g["gain"] == pytest.approx(g["fused"] - g["unimodal"])
        assert g["beats_every_unimodal"] == (runs[name].mean() > runs["early-fusion-text"].mean())
    assert "p_value" not in gains
    tested = report.fusion_gains(report.runs_table(runs), results=runs, n_boot=200)
    pd.testing.assert_frame_equal(tested.drop(columns=["p_value", "significant"]), gains)
    direct = report.compare_runs(runs["early-fusion-text"], runs["early-fusion"], n_boot=200)
    assert tested.loc["early-fusion", "p_value"] == direct["p_value"]
    assert tested.loc["early-fusion", "significant"] == direct["significant"]


def test_ablation_table_puts_the_reference_first_with_deltas(runs):
    table = report.ablation_table({"cnn-text": runs["cnn-text"]}, reference=runs["cnn-all"])
    assert list(table["experiment"]) == ["cnn-all", "cnn-text"]
    assert table["Δ Macro-F1 vs cnn-all"].iloc[0] == 0
    assert "Δ Macro-F1 vs cnn-all" not in report.ablation_table({"cnn-text": runs["cnn-text"]})


# ------------------------------------------------------------------------------------------------ significance

def _write_run_dir(folder, result: RunResult):
    """The run directory the runner writes (model files aside), through the same code."""
    for s in result.seeds:
        write_seed(folder, result, s)
    write_summary(folder, result)


def test_a_run_read_back_from_disk_is_the_run_in_memory(runs, tmp_path):
    a = runs["cnn-text"]
    _write_run_dir(tmp_path / "a", a)
    back = read_run(tmp_path / "a")
    assert back.experiment.name == a.experiment.name and back.data == a.data and back.test is None
    assert back.summary() == a.summary()
    for x, y in zip(back.seeds, a.seeds):
        np.testing.assert_array_equal(x.predictions, y.predictions)
        np.testing.assert_allclose(x.probabilities, y.probabilities, rtol=1e-6)
    assert report.runs_table([tmp_path / "a"]).drop(columns="data").equals(
        report.runs_table([a]).drop(columns="data"))


def test_the_seed_ensemble_averages_posteriors_and_is_reported_beside_the_mean(runs):
    a = runs["cnn-text"]
    probs = np.mean([s.probabilities for s in a.seeds], axis=0)
    want = evaluate(a.labels, np.where(a.mask, probs.argmax(-1), -1), a.mask, a.class_names)
    ensemble = a.summary()["ensemble"]
    assert ensemble["seeds"] == 2 and ensemble["macro_f1"] == pytest.approx(want["macro_f1"])
    assert ensemble["accuracy"] == pytest.approx(want["accuracy"])
    assert a.summary()["metrics"]["macro_f1"]["mean"] == pytest.approx(a.mean())  # the mean is still there
    table = report.runs_table([a])
    assert table.loc[0, "ens_macro_f1"] == pytest.approx(want["macro_f1"])
    md = report.to_markdown(table)
    assert "Ensemble macro-F1" in md and f"{want['macro_f1']:.4f}" in md
    assert f"{a.mean():.4f} ± " in md


def test_compare_runs_in_memory_equals_compare_runs_on_disk(runs, tmp_path):
    a, b = runs["cnn-text"], runs["rnn-text"]
    _write_run_dir(tmp_path / "a", a)
    _write_run_dir(tmp_path / "b", b)
    on_disk = report.compare_runs(tmp_path / "a", tmp_path / "b", n_boot=300)
    in_memory = report.compare_runs(a, b, n_boot=300)
    for key in ("diff", "ci95", "p_value"):
        assert in_memory[key] == pytest.approx(on_disk[key])
    assert {k: v for k, v in in_memory.items() if k not in ("diff", "ci95", "p_value")} == \
        {k: v for k, v in on_disk.items() if k not in ("diff", "ci95", "p_value")}
    assert in_memory["diff"] == pytest.approx(b.mean() - a.mean())
    assert "SYNTHETIC" in report.describe_comparison(in_memory)


def test_compare_runs_scores_every_class_even_when_the_last_is_absent(runs, tmp_path):
    """With no 'neutral' in labels or predictions, the bootstrap must still average F1 over all C classes (as the
    reported metrics do), not over the C-1 it happened to see."""
    def without_last_class(r: RunResult) -> RunResult:
        last = len(r.class_names) - 1
        test = dataclasses.replace(r.test, labels=np.where(r.test.labels == last, 0, r.test.labels))
        out = RunResult(r.experiment, r.data, r.class_names, test.labels, test.mask, test.dialogue_ids, test=test)
        for s in r.seeds:
            pred = np.where(s.predictions == last, 0, s.predictions)
            out.seeds.append(dataclasses.replace(s, predictions=pred,
                                                 metrics=evaluate(test.labels, pred, test.mask, r.class_names)))
        return out

    a, b = without_last_class(runs["cnn-text"]), without_last_class(runs["rnn-text"])
    _write_run_dir(tmp_path / "a", a)
    _write_run_dir(tmp_path / "b", b)
    assert report.compare_runs(tmp_path / "a", tmp_path / "b", n_boot=50)["diff"] == \
        pytest.approx(b.mean() - a.mean())


def test_compare_runs_refuses_different_test_sets(runs, ds):
    other = fake_run("cnn-all", load_dataset("synthetic-small", seed=1), 0.7)
    with pytest.raises(ValueError, match="same test set"):
        report.compare_runs(runs["cnn-text"], other)


def test_significance_table_tests_the_pairs_that_ran(runs):
    pairs = [("cnn-text", "rnn-text"), ("cnn-text", "multimodal"), ("cnn-audio", "cnn-all")]
    table, comparisons = report.significance_table(runs, pairs, n_boot=200)
    assert list(table.index) == ["rnn-text − cnn-text", "cnn-all − cnn-audio"]
    test = runs["cnn-text"].test
    direct = paired_bootstrap(test.labels, [s.predictions for s in runs["cnn-text"].seeds],
                              [s.predictions for s in runs["rnn-text"].seeds], test.mask, n_boot=200,
                              num_classes=test.num_classes)
    assert table.iloc[0]["p_value"] == direct["p_value"] and table.iloc[0]["diff"] == direct["diff"]
    assert table.iloc[0]["seeds"] == "2/2" and comparisons[0]["b"] == "rnn-text"


# ------------------------------------------------------------------------------------------------ notebook glue

def test_select_experiments():
    names = ["cnn-text", "cnn-audio", "cnn-all"]
    assert report.select_experiments(names) == names
    assert report.select_experiments([EXPERIMENTS[n] for n in names]) == names
    assert report.select_experiments(names, quick_subset=["cnn-all", "cnn-text", "not-registered"]) == \
        ["cnn-text", "cnn-all"]
    assert report.select_experiments(names, limit=1) == ["cnn-text"]
    assert report.select_experiments(names, limit=0) == []
    assert report.select_experiments(names, only=["cnn-all", "rnn-text"]) == ["cnn-all"]
    with pytest.raises(KeyError, match="cnn-txt"):
        report.select_experiments(names, only=["cnn-txt"])


def test_report_dir_writes_only_when_it_has_a_root(tmp_path):
    frame = pd.DataFrame({"f1": [0.5]})
    nowhere = report.ReportDir(None)
    assert nowhere.figures is None and nowhere.runs is None
    assert nowhere.table("x", frame, markdown="# x\n") is None and not any(tmp_path.iterdir())
    reports = report.ReportDir(str(tmp_path))
    assert reports.figures == tmp_path / "figures" and reports.runs == tmp_path / "runs"
    path = reports.table("x", frame, markdown="# x\n")
    assert path == tmp_path / "tables" / "x.md" and path.read_text() == "# x\n"
    reports.table("x", frame, markdown="# y\n")  # notebooks rerun: overwriting is fine
    assert path.read_text() == "# y\n"


def test_every_markdown_table_has_its_numbers_in_a_csv_beside_it(tmp_path, ds, runs):
    frame = pd.DataFrame({"f1": [0.5]}, index=pd.Index(["happy"], name="class"))
    reports = report.ReportDir(tmp_path)
    shown = reports.frame("per class f1", frame, title="F1", data=ds)
    assert "F1 — SYNTHETIC" in shown.to_html()
    assert (tmp_path / "tables" / "per-class-f1.md").read_text() == report.frame_to_markdown(frame, title="F1",
                                                                                             data=ds)
    assert (tmp_path / "tables" / "per-class-f1.csv").read_text().splitlines() == ["class,f1", "happy,0.5"]
    assert "F1 — SYNTHETIC" in report.ReportDir(None).frame("f1", frame, title="F1", data=ds).to_html()
    table = report.runs_table(runs)
    shown = reports.runs_table("grid runs", table, title="Grid")
    written = pd.read_csv(tmp_path / "tables" / "grid-runs.csv")
    assert list(written["experiment"]) == list(table["experiment"])
    assert written["macro_f1"].to_numpy() == pytest.approx(table["macro_f1"].to_numpy())
    assert (tmp_path / "tables" / "grid-runs.md").read_text() == report.to_markdown(table, title="Grid")
    assert "Grid — SYNTHETIC" in shown.to_html()


def test_tables_are_collected_in_the_order_each_notebook_wrote_them(tmp_path):
    from model_utils.report.notebook import indexed_tables

    frame = pd.DataFrame({"a": [1]})
    second, first = report.ReportDir(tmp_path, "2_second"), report.ReportDir(tmp_path, "1_first")
    second.table("zeta", frame, markdown="z\n")
    first.table("omega", frame, markdown="o\n")
    first.table("alpha", frame, markdown="a\n")
    first.table("omega", frame, markdown="o2\n")  # a cell run again keeps its place
    (tmp_path / "tables" / "by-hand.md").write_text("h\n")
    order = [p.name for p in indexed_tables(tmp_path / "tables", ["1_first", "2_second"])]
    assert order == ["omega.md", "alpha.md", "zeta.md", "by-hand.md"]


@pytest.mark.parametrize("parts, stem", [
    (("confusion", "timnet-text[filters=16,train.learning_rate=0.0003]"),
     "confusion_timnet-text--filters-16--train.learning_rate-0.0003"),
    (("history", "cnn-all"), "history_cnn-all"),
    (("NB2 · grid / macro-F1",), "NB2-grid-macro-F1"),
])
def test_file_names_are_made_from_content_without_brackets_equals_or_commas(parts, stem):
    assert report.file_stem(*parts) == stem


# ------------------------------------------------------------------------------------------------ plots

def test_grid_and_seed_plots_say_synthetic_and_save_png(runs, tmp_path):
    table = report.runs_table(runs)
    fig = plots.plot_grid(table, title="grid", save_dir=tmp_path, name="grid")
    assert "SYNTHETIC" in fig.axes[0].get_title()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert f"{runs['rnn-text'].mean():.3f}" in "".join(texts)
    fig = plots.plot_seeds(runs, title="seeds", save_dir=tmp_path, name="seeds")
    assert "SYNTHETIC" in fig.axes[0].get_title()
    assert (tmp_path / "grid.png").stat().st_size > 0 and (tmp_path / "seeds.png").stat().st_size > 0
    matplotlib.pyplot.close("all")


def test_the_grid_has_a_colour_bar_and_names_its_data_not_a_path(runs, tmp_path):
    table = report.runs_table(runs)
    table["data"] = "a file at the IEMOCAP path, merged4"
    fig = plots.plot_grid(table, title="grid", save_dir=tmp_path, name="grid")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "mean Macro-F1"  # the colour bar
    assert str(tmp_path) not in fig.axes[0].get_title() and "IEMOCAP path" in fig.axes[0].get_title()
    matplotlib.pyplot.close("all")


def test_learning_curves_show_training_and_validation_loss_and_validation_macro_f1(runs, tmp_path):
    run = runs["cnn-text"]
    fig = plots.plot_history(run, save_dir=tmp_path)
    loss_ax, f1_ax = fig.axes
    assert len(loss_ax.get_lines()) == 2 * len(run.seeds)  # training and validation loss of every seed
    validation = [line for line in loss_ax.get_lines() if line.get_linestyle() == "--"]
    assert [list(line.get_ydata()) for line in validation] == [[h["val_loss"] for h in s.history] for s in run.seeds]
    assert "validation macro-F1" in f1_ax.get_title()
    assert (tmp_path / "history_cnn-text.png").is_file()
    matplotlib.pyplot.close("all")

