"""Run directories that resume: what a rerun of the same command reuses, refuses or replaces.

A run directory holds ``config.json``, one ``seed_<n>/`` per complete seed and ``summary.json`` (the format:
:mod:`model_utils.results`; what the suite wrote: :mod:`model_utils.rundir`). Rerunning trains only the seeds
that are missing; a different configuration (:func:`model_utils.run.plan.fingerprint`) is refused while complete
seeds of it remain, unless ``overwrite``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from data_utils.fileio import OutputExistsError, write_json, write_text

from .. import rundir
from ..machine.provenance import git_commit
from ..results import CONFIG, SUMMARY, RunResult, SeedResult, read_config, read_seed, write_summary
from ..rundir import MODEL_CARD, PREDICTIONS_CSV
from .card import model_card
from .inputs import read_inputs, write_inputs
from .plan import Plan, fingerprint, short
from .seed import log


def prepare_out(out: Path | None, plan: Plan, seeds: Sequence[int], overwrite: bool, verbose: int
                 ) -> dict[int, SeedResult]:
    """Make ``out`` ready for ``seeds`` of ``plan`` (call it holding ``out``'s lock, :func:`rundir.claim`) and return
    those of ``seeds`` whose complete folders it already holds for the same configuration (reused, not retrained).

    ``out`` must be new, empty, or a run directory holding only what the suite wrote (:func:`rundir.check_ours`).
    A different configuration is refused while the folder holds complete seeds of it, unless ``overwrite``, which
    then removes them; a folder with none (a run that failed before its first seed) is simply taken over. With the
    same configuration ``overwrite`` removes the folders of ``seeds``, which are retrained. Seed folders of other
    seeds stay where they are, outside this run's summary.
    """
    if out is None:
        return {}
    found = rundir.check_ours(out)
    rundir.remove_leftovers(found)  # staging folders of a run that was killed mid-seed (we hold the lock)
    recorded = read_config(out) if found.config else None
    folders = dict(found.seeds)
    if recorded is None and (folders or (out / SUMMARY).exists()):
        if not overwrite:
            raise OutputExistsError(f"{out} holds a run without {CONFIG} (from an older version); refusing to "
                                    "overwrite it (pass --force to replace it)")
        remove = list(folders)
    elif recorded is not None and fingerprint(recorded) != fingerprint(plan.document):
        changed = differences(fingerprint(recorded), fingerprint(plan.document))
        if folders and not overwrite:
            raise OutputExistsError(f"{out} holds seeds {sorted(folders)} of a different configuration "
                                    f"({'; '.join(changed[:4])}); refusing to mix them: choose another --out, or "
                                    "pass --force to replace them")
        if folders:  # said whatever the verbosity: a replaced run is never silent
            log(1, f"[{plan.experiment.name}] {out}: replacing seeds {sorted(folders)} of a different "
                   f"configuration ({'; '.join(changed[:4])})")
        remove = list(folders)
    else:
        remove = [s for s in seeds if s in folders] if overwrite else []
    for s in remove:
        rundir.remove_seed(folders.pop(s))
    if found.config:
        for name in (SUMMARY, PREDICTIONS_CSV, MODEL_CARD):  # rewritten when this run ends
            (out / name).unlink(missing_ok=True)
    write_json(out / CONFIG, plan.document, overwrite=True)
    write_inputs(out, plan.inputs, plan.statistics)
    reused = {s: read_seed(folders[s])[0] for s in seeds if s in folders}
    name = plan.experiment.name
    if reused:
        log(verbose, f"[{name}] {out}: reusing the complete seed(s) {sorted(reused)} of the same configuration")
        commits = {s.provenance.get("git_commit") for s in reused.values()} - {None, git_commit()}
        if commits:
            log(verbose, f"[{name}] note: reused seeds were trained at commit(s) {sorted(commits)}, not at the "
                          f"current {git_commit()} (pass --force to retrain them)")
    others = sorted(set(folders) - set(seeds))
    if others:
        log(verbose, f"[{name}] {out}: seed folder(s) {others} stay, outside this run's summary")
    return reused


@contextlib.contextmanager
def claimed(outs: Iterable[Path | None]):
    """Hold the lock of every run directory in ``outs`` (None: not written) while the block runs."""
    outs = [out for out in outs if out is not None]
    for out in outs:
        rundir.check_ours(out)  # before the lock file is written into a folder that is not ours
    with contextlib.ExitStack() as stack:
        for out in outs:
            stack.enter_context(rundir.claim(out))
        yield


def differences(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    found = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, Mapping) and isinstance(y, Mapping):
            found += differences(x, y, f"{prefix}{key}.")
        elif x != y:
            found.append(f"{prefix}{key}: {short(x)} there, {short(y)} now")
    return found


def finish(run: RunResult, reused: Mapping[int, SeedResult], out: Path | None) -> RunResult:
    """``run`` with its reused seeds, all in seed order; in ``out``, its model card, the seed ensemble's
    predictions and ``summary.json`` (last: a run directory with a summary is complete)."""
    run.seeds = sorted([*run.seeds, *(s for k, s in reused.items() if k not in {x.seed for x in run.seeds})],
                       key=lambda s: s.seed)
    if out is not None:
        run.folder = Path(out)
        write_text(out / MODEL_CARD, model_card(run, read_inputs(out)), overwrite=True)
        write_summary(out, run)
    return run
