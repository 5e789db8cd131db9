"""What every command shares: turning expected errors into a message and exit code 1, never a traceback."""
from __future__ import annotations

import functools
import pickle
import sys

from data_utils.fileio import OutputExistsError, OutputPathError


def fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split()) or 'failed (no reason given)'}", file=sys.stderr)
    return 1


# Errors a user can cause with their input; anything else is our bug and keeps its traceback.
USER_ERRORS = (ValueError, KeyError, FileNotFoundError, OutputExistsError, OutputPathError, pickle.UnpicklingError)


def handles_data_errors(handler):
    """Run a command: what its input can cause (:data:`USER_ERRORS`, OS errors on paths and disks, a recursion or
    memory limit, TensorFlow running out of memory for a model) becomes one ``error:`` line and exit code 1."""
    @functools.wraps(handler)
    def wrapper(args) -> int:
        try:
            return handler(args)
        except USER_ERRORS as e:
            return fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
        except BrokenPipeError:
            raise  # the reader went away: mser.cli.main ends quietly
        except OSError as e:
            name = str(e.filename) if getattr(e, "filename", None) else ""
            where = f"{name if len(name) <= 200 else name[:120] + '…' + name[-60:]}: " if name else ""
            return fail(f"{where}{e.strerror or e}")
        except RecursionError:
            return fail("the input nests deeper than Python can follow (RecursionError)")
        except MemoryError as e:
            return fail(f"out of memory{f' ({e})' if str(e) else ''}: the input or the model is too large for this "
                        "machine")
        except Exception as e:  # noqa: BLE001 — only TensorFlow's resource errors; everything else re-raised
            if type(e).__name__ == "ResourceExhaustedError" and type(e).__module__.startswith("tensorflow"):
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                return fail(f"TensorFlow ran out of memory building or training the model ({first[:200]}); lower the "
                            "hyperparameters that size it (--set)")
            raise
    return wrapper


RESUME_HINT = "a run directory keeps its complete seeds: rerun the same command to resume it."


def add_run_dir(parser) -> None:
    """The ``RUN_DIR`` argument of the commands that use a trained run (``predict``, ``robustness``)."""
    from pathlib import Path

    parser.add_argument("run", type=Path, metavar="RUN_DIR", help="a run directory written by mser run")


def run_inputs(folder) -> list:
    """What a command that reads the run in ``folder`` must never overwrite: every file of the run directory, the
    saved extractors its ``inputs.json`` records (their JSON, npz and safetensors files) and its data (a file, or a
    folder's or glob's modality files)."""
    import json
    from pathlib import Path

    from data_utils.identity import source_files

    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("**/*") if p.is_file()]
    try:
        extractors = json.loads((folder / "inputs.json").read_text(encoding="utf-8")).get("extractors", {})
        for x in (Path(str(r.get("path"))) for r in extractors.values() if r.get("path")):
            found += [q for q in (x, x.with_suffix(".npz"), x.with_suffix(".safetensors")) if q.is_file()]
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    try:
        data = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("data", {}).get("path")
        found += source_files(str(data)) if data else []
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return found


def check_outputs(outputs: dict, *, force: bool, inputs: list) -> None:
    """Check every output path (``{option: path}``, None for one not asked for) before any work: writable without
    ``force`` only if new, never an input, never inside a run directory, and no two the same. Raises
    :class:`~data_utils.fileio.OutputPathError` / ``OutputExistsError`` naming the option and the path."""
    from pathlib import Path

    from data_utils.fileio import check_output_path
    from model_utils.rundir import run_directory_of

    seen: dict = {}
    for option, path in outputs.items():
        if path is None:
            continue
        inside = run_directory_of(Path(path).parent)
        if inside is not None:
            raise OutputPathError(f"{option} {path} is inside the run directory {inside}, which holds only what mser "
                                  "run writes; choose a path outside it")
        key = Path(path).absolute()
        if key in seen:
            raise OutputPathError(f"{option} and {seen[key]} are the same file ({path}); give each its own path")
        seen[key] = option
        check_output_path(path, overwrite=force, option=option, inputs=inputs)
