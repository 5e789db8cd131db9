"""Opt-in TensorBoard logs of training: ``mser run --tensorboard DIR``, ``run_many(..., tensorboard=DIR)``.

Keras' own :class:`keras.callbacks.TensorBoard` writes them, after the suite's selection callback each epoch (which
puts its validation row into Keras' epoch logs, :func:`model_utils.training.fit`): under ``train/`` the scalars
``epoch_loss`` (the training loss) and ``epoch_learning_rate``, under ``validation/`` ``epoch_loss`` (validation
cross-entropy), ``epoch_accuracy``, ``epoch_macro_f1``, ``epoch_weighted_f1`` and ``epoch_uar``; the step is the
epoch counted from 0, as Keras counts. One seed logs into ``DIR/<run name>/seed_<s>/``
(:func:`~model_utils.run.plan.run_dir_name`), a cross-validated run one ``fold_<session>/`` below that per fold.

Logging reads what training computes and changes no number (``tests/test_tensorboard.py`` checks it bit for bit).
``DIR`` may exist and hold earlier logs (a seed trained again adds an event file beside its old one); nothing in it
is ever removed. It is never a run directory or inside one: those hold only what the suite writes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from data_utils.fileio import OutputPathError, check_output_path

from ..config import Experiment
from ..rundir import CONFIG, is_run_config
from .plan import run_dir_name

INSTALL = "make setup-tensorboard (or pip install .[tensorboard])"


def require_tensorboard(option: str = "tensorboard") -> None:
    """Raise ``ValueError`` (one line naming ``option`` and :data:`INSTALL`) if the ``tensorboard`` package cannot be
    imported: Keras' callback writes its scalars through it, and would fail only after the first epoch."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ValueError(f"{option} needs the tensorboard package, which is not installed: {INSTALL}") from None


def event_folders(tensorboard: str | Path | None, experiments: Sequence[Experiment], outs: Iterable[Path | None],
                  cv: str | None = None, *, option: str = "tensorboard", metric: str | None = None
                  ) -> dict[str, Path | None]:
    """Where each experiment's seeds log (``tensorboard/<run name>``, absolute, by experiment name; every value None
    when ``tensorboard`` is None), checked before any data is read or anything trained.

    ``outs``: the run directories of the same command. Raises ``ValueError`` if the tensorboard package is missing
    (:func:`require_tensorboard`); :class:`~data_utils.fileio.OutputPathError` or
    :class:`~data_utils.fileio.OutputExistsError` if the folder cannot be written
    (:func:`~data_utils.fileio.check_output_path`), or if an experiment's logs would go into a run directory (one of
    ``outs`` or any run directory of the suite) or would hold one; each names ``option`` and the path. Creates
    nothing."""
    if tensorboard is None:
        return {e.name: None for e in experiments}
    require_tensorboard(option)
    root = check_output_path(tensorboard, directory=True, option=option)
    runs = [Path(o).resolve() for o in outs if o is not None]
    folders = {e.name: root.absolute() / run_dir_name(e, cv, metric) for e in experiments}  # as on a Ray worker
    for folder in folders.values():
        where = folder.resolve()
        clash = next((r for r in runs if r == where or r in where.parents or where in r.parents), None)
        clash = clash or next((p for p in (where, *where.parents) if is_run_config(p / CONFIG)), None)
        if clash is not None:
            relation = "is" if clash == where else "holds" if where in clash.parents else "is inside"
            raise OutputPathError(f"{option} {root}: the logs would go to {folder}, which {relation} the run directory "
                                  f"{clash}; a run directory holds only what the suite writes: choose a folder "
                                  "outside every run directory, e.g. tensorboard/")
    return folders


def seed_folder(folder: Path, seed: int, session: str = "") -> Path:
    """The folder of one seed's logs below an experiment's (:func:`event_folders`): ``seed_<s>``, and
    ``seed_<s>/fold_<session>`` for a fold of a cross-validated run."""
    return folder / f"seed_{seed}" / (f"fold_{session}" if session else "")


def callback(folder: Path, seed: int, session: str = ""):
    """Keras' TensorBoard callback writing one seed's (or fold's) per-epoch scalars into :func:`seed_folder`
    (created by TensorFlow's writer on the first epoch's end): no graph, no profile, once per epoch."""
    import keras

    return keras.callbacks.TensorBoard(log_dir=str(seed_folder(folder, seed, session)), write_graph=False,
                                       profile_batch=0, update_freq="epoch")
