"""Reading results: tables (:mod:`~model_utils.report.tables`), comparisons (:mod:`~model_utils.report.compare`),
figures (:mod:`~model_utils.report.plots`), error analysis (:mod:`~model_utils.report.analysis`), how reports name
their data and files (:mod:`~model_utils.report.text`) and what the notebooks write where
(:mod:`~model_utils.report.notebook`). Every function takes runs in memory (what the runners return) or run
directories on disk. The names notebooks use are importable from here: ``from model_utils.report import runs_table``.
"""
from .compare import compare_runs, describe_comparison, find_run, significance_table
from .notebook import ReportDir, select_experiments, show_code, show_model, source_of
from .plots import plot_confusion, plot_grid, plot_history, plot_seeds, save_figure
from .tables import (ablation_table, arch_modality_grid, best_by, frame_to_markdown, fusion_gains, per_class_f1,
                     per_class_report, runs_table, summary_frame, to_markdown, with_delta)
from .text import Markdown, data_banner, describe_data, escape_markdown, file_stem, run_settings, styled

__all__ = ["Markdown", "ReportDir", "ablation_table", "arch_modality_grid", "best_by", "compare_runs", "data_banner",
           "describe_comparison", "describe_data", "escape_markdown", "file_stem", "find_run", "frame_to_markdown",
           "fusion_gains", "per_class_f1", "per_class_report", "plot_confusion", "plot_grid", "plot_history",
           "plot_seeds", "run_settings", "runs_table", "save_figure", "select_experiments", "show_code",
           "show_model", "significance_table", "source_of", "styled", "summary_frame", "to_markdown", "with_delta"]
