"""A trained run as a tool: its models, and what they need to label new conversations.

``load_run(RUN_DIR)`` reads a run directory that ``mser run`` (or ``run_experiment``, ``run_many``) wrote: every
seed's model (one per fold for a cross-validated run), the run's ``inputs.json`` and ``standardization.npz``
(:mod:`model_utils.run.inputs`). ``.predict(...)`` then labels new dialogues:

- from a features file in any layout the loader reads (``data=``), whose modalities and widths must be the run's;
- from a transcripts CSV (``transcripts=``; ``dialogue_id``, ``turn`` and ``text``, with ``speaker``, ``label``,
  ``utterance_id`` optional), embedded by the saved extractor the run's text features came from
  (:mod:`data_utils.extractors`), for a text-only run whose features ``mser features text`` built.

The features are standardised with the training dialogues' statistics, every model gives its posteriors and the
posteriors are averaged over the seeds (the seed ensemble; ``seed=`` for one). Labels, where the input has them,
are mapped onto the run's classes under its scheme: a label the run does not know is warned about and not scored.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from data_utils.corpus import Corpus, DataWarning
from data_utils.dataset import ERCDataset, from_corpus, load_corpus
from data_utils.labels import LabelScheme

from . import metrics
from .config import Experiment
from .predictions import utterance_table
from .rundir import CONFIG, INPUTS, contents, is_run_config
from .run.inputs import PLAIN_FOLD, RunInputs, read_inputs


def load_run(folder: str | Path) -> "TrainedRun":
    """The :class:`TrainedRun` of the run directory ``folder``. Raises ``FileNotFoundError`` (no such folder, no
    run there, or a run written before runs recorded their inputs: it says how to rerun it),
    :class:`~model_utils.results.RunFormatError` (a file of the run is not as the suite writes it) or
    ``ValueError`` (no seed of the run has a saved model)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such run directory")
    if not is_run_config(folder / CONFIG):
        raise FileNotFoundError(f"{folder} holds no run of this suite ({CONFIG} is missing or not a run's)")
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    inputs = read_inputs(folder)
    models: dict[int, dict[str, Path]] = {}
    for seed, path in contents(folder).seeds.items():
        found = {PLAIN_FOLD: path / "model.keras"} if (path / "model.keras").is_file() else \
            {p.stem[len("fold_"):]: p for p in sorted(path.glob("fold_*.keras"))}
        if found:
            models[seed] = found
    if not models:
        raise ValueError(f"{folder}: no seed folder holds a trained model (model.keras or fold_<session>.keras)")
    return TrainedRun(folder, Experiment.from_record(config["experiment"]), inputs, models, config)


@dataclass(eq=False)
class TrainedRun:
    """A run's models (``models[seed][fold]``: the path of each ``.keras`` file; the fold of a run on the test
    split is ``'test-split'``) and its recorded inputs."""

    folder: Path
    experiment: Experiment
    inputs: RunInputs
    models: dict[int, dict[str, Path]]
    config: dict

    @property
    def seeds(self) -> list[int]:
        return sorted(self.models)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.inputs.class_names

    @functools.lru_cache(maxsize=None)
    def model(self, seed: int, fold: str = PLAIN_FOLD):
        """Seed ``seed``'s model of ``fold``, loaded once (``keras.saving.load_model``)."""
        import keras

        return keras.saving.load_model(self.models[seed][fold], compile=False)

    # -- inputs ---------------------------------------------------------------------------------------------
    def dataset(self, data: str | Path | Corpus | None = None, *, transcripts: str | Path | None = None
                ) -> ERCDataset:
        """New dialogues as the run's models take them before standardisation: a features file or a Corpus
        (``data``), or a transcripts CSV embedded by the run's saved text extractor (``transcripts``); only the
        run's modalities, widths checked, labels under the run's scheme, speakers as the run numbers them.
        Raises ``ValueError`` (one line: a width or modality that differs from the run's, no saved extractor)."""
        if (data is None) == (transcripts is None):
            raise ValueError("give the new dialogues as data (a features file) or as transcripts (a CSV), one of them")
        if transcripts is not None:
            corpus = self._embedded(transcripts)
        else:
            corpus = data if isinstance(data, Corpus) else load_corpus(str(data))
        self._check_features(corpus)
        ds = from_corpus(corpus, scheme=self._scheme_for(corpus))
        ds = dataclasses.replace(ds, features={m: ds.features[m] for m in self.inputs.modalities})
        if self.inputs.speaker_input == "speaker":  # indices into the training corpus's speakers, not these
            index = {name: i for i, name in enumerate(self.inputs.speaker_names)}
            remap = np.array([index.get(s, len(index)) for s in ds.speaker_names] + [-1], np.int32)
            ds = dataclasses.replace(ds, speakers=remap[ds.speakers])
        return ds

    def _embedded(self, transcripts) -> Corpus:
        from data_utils.extractors import load_extractor, prediction_corpus

        record = self.inputs.extractors.get("text")
        if set(self.inputs.modalities) != {"text"} or record is None:
            used = ", ".join(self.inputs.modalities)
            why = "uses " + used if set(self.inputs.modalities) != {"text"} else \
                "was trained on text features without a saved extractor (built elsewhere, or before extractors " \
                "were saved: rebuild them with `mser features text ... --force` and rerun)"
            raise ValueError(f"{self.folder}: a transcripts CSV gives text only, and this run {why}; build the new "
                             "dialogues' features as the run's were and pass them as data (--data)")
        extractor = load_extractor(record["path"], sha256=record["sha256"], recorded_in=str(self.folder / INPUTS))
        return prediction_corpus(transcripts, extractor)

    def _check_features(self, corpus: Corpus) -> None:
        first = next(iter(corpus.dialogues.values()), None)
        if first is None:
            raise ValueError(f"{corpus.source}: no dialogues to label")
        for m in self.inputs.modalities:
            if m not in corpus.modalities:
                raise ValueError(f"{corpus.source}: has no {m} features (it has {', '.join(corpus.modalities)}), and "
                                 f"the run was trained on {', '.join(self.inputs.modalities)}")
            width, trained = int(first.features[m].shape[1]), self.inputs.widths[m]
            if width != trained:
                raise ValueError(f"{corpus.source}: {m} is {width}-wide here, the run was trained on {trained}")

    def _scheme_for(self, corpus: Corpus) -> LabelScheme:
        """The run's scheme, with the labels of ``corpus`` it does not know added as context (warned about)."""
        scheme = self.inputs.scheme
        used = {label for d in corpus.dialogues.values() for label in d.labels}
        unknown = sorted(used - set(scheme.mapping))
        if unknown:
            warnings.warn(f"{corpus.source}: labels {unknown} are not in the run's scheme {scheme.name!r} (classes "
                          f"{', '.join(scheme.classes)}); those utterances are labelled but not scored", DataWarning,
                          stacklevel=3)
        return LabelScheme(scheme.name, scheme.classes, {**scheme.mapping, **dict.fromkeys(unknown)},
                           scheme.description)

    # -- outputs --------------------------------------------------------------------------------------------
    def posteriors(self, ds: ERCDataset, *, seed: int | None = None, folds: Sequence[str] | None = None
                   ) -> np.ndarray:
        """(N, T, C) float32: the posteriors of every real utterance of ``ds`` (:meth:`dataset`), averaged over
        the seeds' models (or seed ``seed``'s) and, for a cross-validated run, over its folds' models (or those of
        ``folds``), each with its fold's standardisation (``ds`` standardised already is taken as it is). Zero at
        padding."""
        from . import training

        seeds = self.seeds if seed is None else [seed]
        missing = [s for s in seeds if s not in self.models]
        if missing:
            raise ValueError(f"{self.folder}: no seed {missing[0]} (it has seeds {self.seeds})")
        total, count = np.zeros(ds.labels.shape + (len(self.class_names),), np.float64), 0
        for fold, stats in self.inputs.standardizers.items():
            here = [s for s in seeds if fold in self.models[s] and (folds is None or fold in folds)]
            if not here:
                continue
            prepared = ds if stats is None or ds.standardized else stats.transform(ds)
            # The seeds' models share one architecture: one of them carries every seed's weights in turn, so
            # TensorFlow traces its prediction once per input shape rather than once per seed (most of the cost).
            carrier = self.model(here[0], fold)
            own = carrier.get_weights()
            try:
                for s in here:
                    carrier.set_weights(self.model(s, fold).get_weights())
                    total += training.predict(carrier, prepared, self.inputs.modalities)
                    count += 1
            finally:
                carrier.set_weights(own)
        return (total / max(count, 1)).astype(np.float32)

    def predict(self, data: str | Path | Corpus | None = None, *,
                transcripts: str | Path | pd.DataFrame | None = None, seed: int | None = None) -> pd.DataFrame:
        """One row per utterance of the new dialogues, in the input's order (a CSV's rows; a features file's
        dialogues): ``dialogue_id``, ``utterance_id``, ``turn``, ``speaker``, ``text`` where known, ``predicted``
        and ``p_<class>`` per class (:mod:`model_utils.predictions`). ``transcripts`` may be a DataFrame with the
        CSV's columns (read through the same checks). ``table.attrs["metrics"]`` holds
        :func:`model_utils.metrics.evaluate` of the labelled utterances, if any (else None)."""
        if isinstance(transcripts, pd.DataFrame):
            import tempfile

            from data_utils.fileio import frame_csv, write_text

            with tempfile.TemporaryDirectory(prefix="mser-predict-") as folder:
                path = write_text(Path(folder) / "transcripts.csv", frame_csv(transcripts))
                return self.predict(data, transcripts=path, seed=seed)
        ds = self.dataset(data, transcripts=transcripts)
        probabilities = self.posteriors(ds, seed=seed)
        table = utterance_table(ds, probabilities, text=any(any(s) for s in ds.sentences))
        if transcripts is not None:
            from data_utils.transcripts import row_order

            order = {uid: i for i, uid in enumerate(row_order(transcripts, labelled=False))}
            table = table.iloc[np.argsort([order[u] for u in table["utterance_id"]], kind="stable")]
            table = table.reset_index(drop=True)
        table.attrs["metrics"] = self.score(ds, probabilities)
        return table

    def score(self, ds: ERCDataset, probabilities: np.ndarray) -> dict | None:
        """:func:`model_utils.metrics.evaluate` of ``probabilities`` over the scored utterances of ``ds`` (None
        when none has a label the run scores)."""
        if not ds.mask.any():
            return None
        predicted = np.where(ds.mask, metrics.predict_classes(probabilities), -1)
        return metrics.evaluate(ds.labels, predicted, ds.mask, self.class_names)

