"""The public runners, where notebooks and scripts import them: ``from model_utils.runner import run_many``.

The code lives in :mod:`model_utils.run` (the protocol: :mod:`model_utils.run.runner`)."""
from .run import (CV_MODES, DEFAULT_SEEDS, RunResult, SeedResult, default_workers, judged_by,  # noqa: F401
                  prepare_data, resolve_experiment, run_dir_name, run_experiment, run_many, run_seed)
from .run import __all__  # noqa: F401
