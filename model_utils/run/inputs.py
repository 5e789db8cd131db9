"""What a run directory records about its inputs, so a trained model can leave it: ``inputs.json`` and
``standardization.npz``, written beside ``config.json`` before any seed trains.

``inputs.json`` holds the experiment's modalities and their widths, the label scheme (name, classes and the
mapping from label names), the speaker input the model reads (``party``: the speaker's order within its dialogue;
``speaker``: the index into the training corpus's ``speaker_names``, which it lists; or none), the data it was
trained on (name, file, SHA-256) and, for features built by ``mser features``, the saved extractor of each
modality (its absolute path and SHA-256). ``standardization.npz`` (read with ``allow_pickle=False``) holds the
per-modality mean and standard deviation of the training dialogues of each fold (float64, shape (D,)), named
``<fold>/<modality>/mean`` and ``.../std``; the fold of a run on the test split is ``test-split``, a
cross-validation fold is its held-out session. :func:`read_inputs` checks both against each other.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from data_utils.dataset import ERCDataset, Standardizer
from data_utils.fileio import atomic_path, write_json
from data_utils.labels import LabelScheme

from ..results import RunFormatError
from ..rundir import INPUTS, STANDARDIZATION

FORMAT = "mser-run-inputs"
VERSION = 1
PLAIN_FOLD = "test-split"  # the fold name of a run scored on the test split


@dataclass(frozen=True)
class RunInputs:
    """How to build the inputs of a run's models (see the module docstring)."""

    experiment: str
    modalities: tuple[str, ...]
    widths: Mapping[str, int]
    scheme: LabelScheme
    speaker_input: str | None  # 'party', 'speaker' or None
    speaker_names: tuple[str, ...]  # the training corpus's, for speaker_input 'speaker'
    standardizers: Mapping[str, Standardizer | None]  # by fold
    data: Mapping
    extractors: Mapping[str, Mapping[str, str]]  # modality -> {"path", "sha256", "relative"}
    seen_dialogues: tuple[str, ...] = ()  # what the models trained or selected their epochs on (every fold's)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.scheme.classes


def fold_name(session: str) -> str:
    return session or PLAIN_FOLD


def inputs_document(experiment, ds: ERCDataset, data: Mapping, standardizers: Mapping[str, Standardizer | None],
                    speaker_input: str | None, seen: Iterable[str] = ()) -> tuple[dict, dict[str, np.ndarray]]:
    """The ``inputs.json`` document and the ``standardization.npz`` arrays of a run of ``experiment`` on ``ds``
    (the whole dataset, unstandardised), its ``data`` record, the standardizer of each fold (by session) and the
    dialogues its models trained or selected their epochs on (``seen``)."""
    arrays = {}
    for session, stats in standardizers.items():
        for m in experiment.modalities if stats is not None else ():
            arrays[f"{fold_name(session)}/{m}/mean"] = np.asarray(stats.mean[m], np.float64)
            arrays[f"{fold_name(session)}/{m}/std"] = np.asarray(stats.std[m], np.float64)
    scheme = ds.scheme
    document = {
        "format": FORMAT, "version": VERSION,
        "experiment": experiment.name,
        "modalities": list(experiment.modalities),
        "widths": {m: ds.dims[m] for m in experiment.modalities},
        "label_scheme": {"name": scheme.name, "classes": list(scheme.classes),
                         "mapping": {k: v for k, v in sorted(scheme.mapping.items())}},
        "speaker": {"input": speaker_input,
                    "names": list(ds.speaker_names) if speaker_input == "speaker" else []},
        "standardization": {"file": STANDARDIZATION,
                            "folds": {fold_name(s): st is not None for s, st in standardizers.items()}},
        "data": dict(data),
        "extractors": {m: dict(r) for m, r in sorted(ds.extractors.items()) if m in experiment.modalities},
        "seen_dialogues": sorted(seen),
    }
    return document, arrays


def write_inputs(out: Path, document: dict, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``standardization.npz`` then ``inputs.json`` into the run directory ``out``, each atomically; each
    extractor is recorded by its absolute path and, for a run moved together with its features, by its path
    relative to ``out`` (``relative``)."""
    with atomic_path(Path(out) / STANDARDIZATION, overwrite=True, suffix=".npz") as part:
        np.savez(part, **arrays)
    document = {**document, "extractors": {m: {**r, "relative": os.path.relpath(r["path"], Path(out).absolute())}
                                           for m, r in document.get("extractors", {}).items()}}
    write_json(Path(out) / INPUTS, document, overwrite=True)


def read_inputs(out: str | Path) -> RunInputs:
    """The :class:`RunInputs` of the run directory ``out``. ``FileNotFoundError`` when it has none (a run written
    before runs recorded their inputs), :class:`~model_utils.results.RunFormatError` naming the file and field
    when either file is not as the suite writes it."""
    out = Path(out)
    path = out / INPUTS
    if not path.is_file():
        raise FileNotFoundError(f"{out} records no inputs ({INPUTS}): it was written before runs recorded how to "
                                "build their inputs; rerun it (mser run ... --out that folder --force) to use its "
                                "models")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RunFormatError(f"{path}: not a JSON document ({e})") from None

    def field(name, kind):
        value = doc.get(name) if isinstance(doc, dict) else None
        if not isinstance(value, kind):
            raise RunFormatError(f"{path}: field {name!r} is missing or not a {kind.__name__}")
        return value

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise RunFormatError(f"{path}: not a {FORMAT} document")
    scheme_doc, speaker = field("label_scheme", dict), field("speaker", dict)
    try:
        scheme = LabelScheme(str(scheme_doc["name"]), tuple(map(str, scheme_doc["classes"])),
                             {str(k): (None if v is None else str(v)) for k, v in scheme_doc["mapping"].items()})
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise RunFormatError(f"{path}: field 'label_scheme' is not a label scheme ({e})") from None
    modalities = tuple(map(str, field("modalities", list)))
    widths = {str(m): int(w) for m, w in field("widths", dict).items()}
    if set(widths) != set(modalities):
        raise RunFormatError(f"{path}: field 'widths' does not name the modalities {list(modalities)}")
    folds = field("standardization", dict).get("folds", {})
    standardizers = _standardizers(out / STANDARDIZATION, folds, modalities, widths)
    if speaker.get("input") not in ("party", "speaker", None):
        raise RunFormatError(f"{path}: field 'speaker.input' is {speaker.get('input')!r}")
    return RunInputs(str(doc.get("experiment", "")), modalities, widths, scheme, speaker.get("input"),
                     tuple(map(str, speaker.get("names", []))), standardizers, field("data", dict),
                     {str(m): dict(r) for m, r in field("extractors", dict).items()},
                     tuple(map(str, doc.get("seen_dialogues", []))))


def _standardizers(path: Path, folds: Mapping, modalities, widths) -> dict[str, Standardizer | None]:
    found: dict[str, Standardizer | None] = {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
        raise RunFormatError(f"{path}: cannot be read as the run's standardisation statistics ({e})") from None
    for fold, standardized in folds.items():
        if not standardized:
            found[str(fold)] = None
            continue
        try:
            mean = {m: arrays[f"{fold}/{m}/mean"] for m in modalities}
            std = {m: arrays[f"{fold}/{m}/std"] for m in modalities}
        except KeyError as e:
            raise RunFormatError(f"{path}: no array {e.args[0]!r}") from None
        bad = [m for m in modalities if mean[m].shape != (widths[m],) or std[m].shape != (widths[m],)
               or not (np.isfinite(mean[m]).all() and (std[m] > 0).all())]
        if bad:
            raise RunFormatError(f"{path}: the statistics of {bad[0]} (fold {fold}) are not {widths[bad[0]]} finite "
                                 "means and positive deviations")
        found[str(fold)] = Standardizer(mean, std)
    return found
