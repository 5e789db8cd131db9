"""Running experiments, by concern: :mod:`~model_utils.run.plan` (what a run trains and scores),
:mod:`~model_utils.run.seed` (one seed), :mod:`~model_utils.run.resume` (run directories that resume),
:mod:`~model_utils.run.schedule` and :mod:`~model_utils.run.lanes` (which worker trains what),
:mod:`~model_utils.run.progress` (what a run says on stderr), :mod:`~model_utils.run.tensorboard_logs` (opt-in
TensorBoard logs of training), :mod:`~model_utils.run.runner` (the public runners),
and beside them :mod:`~model_utils.run.selection` (model selection by CV), :mod:`~model_utils.run.bench` and
:mod:`~model_utils.run.profiling` (speed). Import the public runners from here or from :mod:`model_utils.runner`.
"""
from .lanes import default_workers
from .plan import judged_by, prepare_data, resolve_experiment, run_dir_name
from .runner import CV_MODES, DEFAULT_SEEDS, RunResult, SeedResult, run_experiment, run_many, run_seed

__all__ = ["CV_MODES", "DEFAULT_SEEDS", "RunResult", "SeedResult", "default_workers", "judged_by", "prepare_data",
           "resolve_experiment", "run_dir_name", "run_experiment", "run_many", "run_seed"]
