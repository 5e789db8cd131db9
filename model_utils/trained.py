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
from .results import RunFormatError
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
        """Seed ``seed``'s model of ``fold``, loaded once (``keras.saving.load_model``); ``RunFormatError`` naming
        the file when it is no model Keras can load."""
        import keras

        path = self.models[seed][fold]
        try:
            return keras.saving.load_model(path, compile=False)
        except Exception as e:  # noqa: BLE001 — Keras raises many kinds for a damaged archive
            raise RunFormatError(f"{path}: not a Keras model this suite saved ({type(e).__name__}: "
                                 f"{' '.join(str(e).split())[:200]})") from None

    # -- inputs ---------------------------------------------------------------------------------------------
    def dataset(self, data: str | Path | Corpus | None = None, *, transcripts=None, extractor: str | Path | None = None
                ) -> ERCDataset:
        """New dialogues as the run's models take them before standardisation: a features file or a Corpus
        (``data``), or transcripts (a CSV's path, a DataFrame with its columns, or the corpus
        ``read_transcripts(..., labelled=False)`` made) embedded by the run's saved text extractor (found where it
        was, beside the run as it moved with it, or at ``extractor``; its SHA-256 checked); only the run's
        modalities, widths checked, labels under the run's scheme, speakers as the run numbers them. Raises
        ``ValueError`` (one line: a width or modality that differs from the run's, no saved extractor); warns
        (``DataWarning``) when features were made by another extractor than the run's, or when the dialogues
        include some the run trained on."""
        if (data is None) == (transcripts is None):
            raise ValueError("give the new dialogues as data (a features file) or as transcripts (a CSV), one of them")
        if transcripts is not None:
            corpus = self._embedded(transcripts, extractor)
        else:
            corpus = data if isinstance(data, Corpus) else load_corpus(str(data))
            self._check_extractors(corpus)
        self._check_features(corpus)
        seen = sorted(set(corpus.dialogues) & set(self.inputs.seen_dialogues))
        if seen:
            warnings.warn(f"{corpus.source}: {len(seen)} of these {len(corpus.dialogues)} dialogues ({seen[0]}, …) "
                          "are dialogues the run trained or selected its epochs on: their scores are not held-out "
                          "scores", DataWarning, stacklevel=2)
        ds = from_corpus(corpus, scheme=self._scheme_for(corpus))
        ds = dataclasses.replace(ds, features={m: ds.features[m] for m in self.inputs.modalities})
        if self.inputs.speaker_input == "speaker":  # indices into the training corpus's speakers, not these
            index = {name: i for i, name in enumerate(self.inputs.speaker_names)}
            remap = np.array([index.get(s, len(index)) for s in ds.speaker_names] + [-1], np.int32)
            ds = dataclasses.replace(ds, speakers=remap[ds.speakers])
        return ds

    def _embedded(self, transcripts, extractor: str | Path | None) -> Corpus:
        from data_utils.extractors import load_extractor, prediction_corpus

        record = self.inputs.extractors.get("text")
        if set(self.inputs.modalities) != {"text"} or record is None:
            used = ", ".join(self.inputs.modalities)
            why = "uses " + used if set(self.inputs.modalities) != {"text"} else \
                "was trained on the built-in synthetic features, which no extractor made" if self.inputs.data.get(
                    "synthetic") and not record else \
                "was trained on text features without a saved extractor (built elsewhere, or before extractors " \
                "were saved: rebuild them with `mser features text ... --force` and rerun)"
            raise ValueError(f"{self.folder}: transcripts give text only, and this run {why}; build the new "
                             "dialogues' features as the run's were and pass them as data (--data)")
        path = self._extractor_path(record, extractor)
        embedder = load_extractor(path, sha256=record["sha256"], recorded_in=str(self.folder / INPUTS))
        corpus = transcripts if isinstance(transcripts, Corpus) else read_for_prediction(transcripts)[0]
        return prediction_corpus(corpus, embedder)

    def _extractor_path(self, record: dict, given: str | Path | None) -> Path:
        """The run's text extractor: ``given``, else where it was when the run trained, else beside the run as it
        was then (run and features moved together)."""
        if given is not None:
            return Path(given)
        for path in (Path(record["path"]), self.folder / record.get("relative", "")):
            if path.is_file():
                return path
        raise FileNotFoundError(f"{self.folder}: the run's text extractor {record['path']} is not found (nor beside "
                                "the run, where it was); give its path (--extractor), SHA-256 "
                                f"{record['sha256'][:16]}…")

    def _check_extractors(self, corpus: Corpus) -> None:
        for m, record in self.inputs.extractors.items():
            made = corpus.extractors.get(m)
            if made is None or made["sha256"] != record["sha256"]:
                warnings.warn(f"{corpus.source}: its {m} features were made by "
                              f"{'another extractor' if made else 'no saved extractor'} than the run's "
                              f"({record['path']}): the models expect features made the same way, so the labels "
                              "may be off", DataWarning, stacklevel=3)

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
                transcripts: str | Path | pd.DataFrame | None = None, seed: int | None = None,
                extractor: str | Path | None = None) -> pd.DataFrame:
        """One row per utterance of the new dialogues, in the input's order (a CSV's or DataFrame's rows; a features
        file's dialogues): ``dialogue_id``, ``utterance_id``, ``turn``, ``speaker``, ``text`` where known, ``label``
        where the input has labels (the class under the run's scheme, '' where not scored), ``predicted`` and
        ``p_<class>`` per class (:mod:`model_utils.predictions`). ``table.attrs``: ``metrics``
        (:func:`model_utils.metrics.evaluate` of the labelled utterances, or None), ``seeds`` (whose models
        answered) and ``seen_dialogues`` (how many of the dialogues the run trained on)."""
        order = None
        if transcripts is not None and not isinstance(transcripts, Corpus):
            transcripts, order = read_for_prediction(transcripts)
        ds = self.dataset(data, transcripts=transcripts, extractor=extractor)
        probabilities = self.posteriors(ds, seed=seed)
        labelled = bool(ds.mask.any())
        table = utterance_table(ds, probabilities, text=any(any(s) for s in ds.sentences), label=labelled)
        if order is not None:
            position = {uid: i for i, uid in enumerate(order)}
            table = table.iloc[np.argsort([position[u] for u in table["utterance_id"]], kind="stable")]
            table = table.reset_index(drop=True)
        table.attrs["metrics"] = self.score(ds, probabilities)
        table.attrs["seeds"] = self.seeds if seed is None else [seed]
        table.attrs["seen_dialogues"] = len(set(ds.dialogue_ids) & set(self.inputs.seen_dialogues))
        return table

    def score(self, ds: ERCDataset, probabilities: np.ndarray) -> dict | None:
        """:func:`model_utils.metrics.evaluate` of ``probabilities`` over the scored utterances of ``ds`` (None
        when none has a label the run scores)."""
        if not ds.mask.any():
            return None
        predicted = np.where(ds.mask, metrics.predict_classes(probabilities), -1)
        return metrics.evaluate(ds.labels, predicted, ds.mask, self.class_names)


def read_for_prediction(transcripts) -> tuple[Corpus, list[str]]:
    """Transcripts to label (a CSV's path, or a DataFrame with its columns, named ``<DataFrame>`` in errors) read
    with ``labelled=False``, and their utterance ids in the order of the rows."""
    from data_utils.transcripts import frame_bytes, parse_transcripts, transcripts_bytes

    if isinstance(transcripts, pd.DataFrame):
        return parse_transcripts(frame_bytes(transcripts), "<DataFrame>", labelled=False)
    return parse_transcripts(transcripts_bytes(transcripts), str(transcripts), labelled=False)
