"""The dataset object every experiment, notebook and test works with.

``load_dataset`` turns a corpus (a pickle or CMU-MOSI/MOSEI files: :func:`data_utils.corpus.read_corpus`; or the
built-in synthetic data) into padded arrays under a label scheme:

- ``features[m]``: (N, T, D) float32 per modality, zeros at padding;
- ``present``: (N, T) bool, a real utterance (what models attend over);
- ``mask``: (N, T) bool, a real utterance whose label the scheme scores (what the loss and metrics count);
- ``labels``: (N, T) int32 class index, -1 wherever ``mask`` is False;
- ``speakers``: (N, T) int32 index into ``speaker_names``, -1 at padding;
- ``parties``: (N, T) int32 index of the speaker within its own dialogue (first to speak = 0, next new speaker = 1,
  ...; DialogueRNN's parties), -1 at padding;
- ``sessions``: per dialogue, its recording session (IEMOCAP's ``Ses01`` … ``Ses05``), or '' where unknown.

T is the longest dialogue. There is no padding class: padding is ``present``'s job.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .corpus import SPLITS, Corpus, DataWarning, read_corpus
from .labels import DEFAULT_SCHEME, LabelScheme, get_scheme

SYNTHETIC = "synthetic"
DEFAULT_VALID_FRACTION = 0.1


@dataclass(frozen=True, eq=False)
class ERCDataset:
    dialogue_ids: tuple[str, ...]
    features: Mapping[str, np.ndarray]
    present: np.ndarray
    mask: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    parties: np.ndarray
    speaker_names: tuple[str, ...]
    utterance_ids: tuple[tuple[str, ...], ...]
    sentences: tuple[tuple[str, ...], ...]
    splits: Mapping[str, tuple[str, ...]]
    scheme: LabelScheme
    source: str
    synthetic: bool
    sessions: tuple[str, ...]
    standardized: bool = False
    extractors: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)  # Corpus.extractors
    metric: str = ""  # the metric the corpus is judged by, '' when it does not say (Corpus.metric)
    corpus: str = ""  # the corpus's name for reports ('CMU-MOSI'), '' when the file does not say (Corpus.corpus)

    # -- shape facts -------------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        return self.scheme.classes

    @property
    def num_classes(self) -> int:
        return self.scheme.num_classes

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.features)

    @property
    def dims(self) -> dict[str, int]:
        return {m: int(a.shape[-1]) for m, a in self.features.items()}

    @property
    def max_len(self) -> int:
        return int(self.present.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return self.present.sum(axis=1).astype(np.int32)

    @property
    def num_parties(self) -> int:
        """The most distinct speakers any one dialogue has (0 for an empty dataset)."""
        return int(self.parties.max()) + 1 if self.parties.size else 0

    def session_ids(self) -> tuple[str, ...]:
        """The distinct known sessions, sorted."""
        return tuple(sorted({s for s in self.sessions if s}))

    def __len__(self) -> int:
        return len(self.dialogue_ids)

    # -- selection ----------------------------------------------------------------------------------------
    def subset(self, which: str | Iterable[str]) -> "ERCDataset":
        """The dialogues of one split (``'train'``, ``'valid'``, ``'test'``) or of the given ids, in id order; T stays
        the same, so a model built for the full dataset accepts every subset."""
        if isinstance(which, str):
            if which not in SPLITS:
                raise ValueError(f"unknown split {which!r}; splits are {SPLITS}")
            ids = set(self.splits.get(which, ()))
        else:
            ids = set(which)
        unknown = ids - set(self.dialogue_ids)
        if unknown:
            raise KeyError(f"{self.source}: unknown dialogue ids {sorted(unknown)[:5]}")
        rows = np.array([i for i, d in enumerate(self.dialogue_ids) if d in ids], dtype=np.int64)
        keep = set(self.dialogue_ids[i] for i in rows)
        return dataclasses.replace(
            self,
            dialogue_ids=tuple(self.dialogue_ids[i] for i in rows),
            features={m: a[rows] for m, a in self.features.items()},
            present=self.present[rows], mask=self.mask[rows], labels=self.labels[rows],
            speakers=self.speakers[rows], parties=self.parties[rows],
            sessions=tuple(self.sessions[i] for i in rows),
            utterance_ids=tuple(self.utterance_ids[i] for i in rows),
            sentences=tuple(self.sentences[i] for i in rows),
            splits={s: tuple(d for d in ids_ if d in keep) for s, ids_ in self.splits.items()},
        )

    def model_inputs(self, modalities: Iterable[str] | None = None, *, speaker: str | None = None
                     ) -> dict[str, np.ndarray]:
        """The arrays a model in ``model_utils`` takes, by input name: (N, T, D) float32 per modality and
        ``present`` (N, T) float32 (1.0 at real utterances); with ``speaker`` ``'party'`` (the speaker's order
        within its dialogue) or ``'speaker'`` (its index in ``speaker_names``), also that (N, T) int32 input, 0 at
        padding. Exactly the inputs of a model built for ``modalities`` (and that speaker input), so
        ``model.predict(ds.model_inputs(...))`` feeds it by name; :func:`model_utils.training.model_inputs` picks
        them from the model itself. ``ValueError`` for a modality the dataset lacks or another ``speaker``."""
        modalities = tuple(self.modalities if modalities is None else modalities)
        missing = [m for m in modalities if m not in self.features]
        if missing:
            raise ValueError(f"{self.source}: this dataset has no {', '.join(missing)} features (it has "
                             f"{', '.join(self.modalities) or 'none'}); choose an experiment that uses only those")
        inputs = {m: self.features[m] for m in modalities}
        inputs["present"] = self.present.astype(np.float32)
        if speaker == "party":
            inputs["party"] = np.maximum(self.parties, 0).astype(np.int32)
        elif speaker == "speaker":
            inputs["speaker"] = np.maximum(self.speakers, 0).astype(np.int32)
        elif speaker is not None:
            raise ValueError(f"speaker must be 'party', 'speaker' or None, got {speaker!r}")
        return inputs

    # -- description --------------------------------------------------------------------------------------
    def class_counts(self, split: str | None = None) -> dict[str, int]:
        ds = self if split is None else self.subset(split)
        counts = np.bincount(ds.labels[ds.mask], minlength=self.num_classes)
        return {c: int(n) for c, n in zip(self.class_names, counts)}

    def summary(self) -> dict:
        """A JSON-ready description: sizes per split, class counts per split, widths, and provenance.

        ``splits`` are the file's splits; without a validation list of its own, 'train' is its whole training list
        and ``held_out_for_validation`` how many of them every experiment holds out (``validation_held_out``)."""
        held = self.validation_held_out()
        per_split = {}
        for split in SPLITS:
            ids = self.splits.get(split, ())
            if not ids and split == "valid":
                continue
            sub = self.subset(split)
            per_split[split] = {
                "dialogues": len(sub),
                "utterances": int(sub.present.sum()),
                "scored_utterances": int(sub.mask.sum()),
                "class_counts": sub.class_counts(),
            }
            if split == "train" and not self.splits.get("valid"):  # else 'valid' is the file's own, listed apart
                per_split[split]["held_out_for_validation"] = held["dialogues"]
        return {
            "source": self.source, **({"corpus": self.corpus} if self.corpus else {}),
            "synthetic": self.synthetic,
            "label_scheme": self.scheme.name,
            "classes": list(self.class_names),
            "splits": per_split,
            "modalities": self.dims,
            "longest_dialogue": int(self.lengths.max()),
            "speakers": list(self.speaker_names),
            "most_parties_in_a_dialogue": self.num_parties,
            "sessions": list(self.session_ids()),
            "standardized": self.standardized,
            "validation_held_out": held,
            "warnings": class_warnings(self),
        }

    def validation_held_out(self, split_seed: int = 0) -> dict:
        """The validation dialogues every experiment holds out of ``train`` (for ``split_seed``, the runner's
        default 0), and where they come from: the file's own list or the rule of :func:`with_validation_split`."""
        if self.splits.get("valid"):
            rule = "the file's own validation list"
            ids = tuple(self.splits["valid"])
        elif len(self.splits.get("train", ())) < 2:
            return {"rule": "none: fewer than 2 training dialogues", "dialogues": 0, "ids": []}
        else:
            rule = (f"drawn from the training dialogues: {DEFAULT_VALID_FRACTION:.0%} (at least one), split seed "
                    f"{split_seed}")
            ids = with_validation_split(self, seed=split_seed).splits["valid"]
        held = self.subset(ids)
        return {"rule": rule, "dialogues": len(ids), "utterances": int(held.present.sum()),
                "scored_utterances": int(held.mask.sum()), "ids": list(ids)}


# ------------------------------------------------------------------------------------------------ building

def from_corpus(corpus: Corpus, scheme: str | LabelScheme = DEFAULT_SCHEME) -> ERCDataset:
    """Pad a validated corpus into arrays under ``scheme``."""
    dialogues = list(corpus.dialogues.values())
    used = {label for d in dialogues for label in d.labels}
    # 'native': a class per label used (IEMOCAP's ids kept); 'auto' says its choice but for synthetic data (IEMOCAP's)
    said = "" if corpus.synthetic else corpus.source
    scheme = get_scheme(scheme, [n for n in corpus.label_names if n in used], source=said)
    n, t = len(dialogues), max(len(d) for d in dialogues)
    speaker_names = tuple(sorted({s for d in dialogues for s in d.speakers}))
    speaker_index = {s: i for i, s in enumerate(speaker_names)}

    features = {m: np.zeros((n, t, dialogues[0].features[m].shape[1]), np.float32) for m in corpus.modalities}
    present = np.zeros((n, t), bool)
    labels = np.full((n, t), -1, np.int32)
    speakers = np.full((n, t), -1, np.int32)
    parties = np.full((n, t), -1, np.int32)
    for i, d in enumerate(dialogues):
        length = len(d)
        present[i, :length] = True
        labels[i, :length] = scheme.class_index(d.labels, source=f"{corpus.source}: dialogue {d.id!r}")
        speakers[i, :length] = [speaker_index[s] for s in d.speakers]
        parties[i, :length] = party_indices(d.speakers)
        for m in corpus.modalities:
            features[m][i, :length] = d.features[m]
    return ERCDataset(
        dialogue_ids=tuple(d.id for d in dialogues),
        features=features,
        present=present,
        mask=labels >= 0,
        labels=labels,
        speakers=speakers,
        parties=parties,
        speaker_names=speaker_names,
        utterance_ids=tuple(d.utterance_ids for d in dialogues),
        sentences=tuple(d.sentences for d in dialogues),
        splits={s: tuple(corpus.splits.get(s, ())) for s in SPLITS},
        scheme=scheme,
        source=corpus.source,
        synthetic=corpus.synthetic,
        sessions=tuple(corpus.session(d.id) for d in dialogues),
        extractors={m: dict(r) for m, r in corpus.extractors.items()},
        metric=corpus.metric,
        corpus=corpus.corpus,
    )


def party_indices(speakers: Sequence[str]) -> list[int]:
    """Each utterance's party: the order in which its speaker first spoke in the dialogue (0, 1, ...)."""
    order: dict[str, int] = {}
    return [order.setdefault(s, len(order)) for s in speakers]


def load_corpus(source: str = SYNTHETIC, *, seed: int = 0, label_names: Sequence[str] | None = None) -> Corpus:
    """``'synthetic'`` / ``'synthetic-small'`` (built-in data, generated for ``seed``) or the path of a pickle.

    ``label_names``: what a pickle's label ids mean, overriding the file's own (``corpus.read_corpus``); refused for
    the built-in data, whose labels are named already.
    """
    from .synthetic import PRESETS, synthetic_corpus

    if str(source) in PRESETS:
        if label_names is not None:
            raise ValueError(f"label names are for a pickle's label ids; the built-in {source!r} data name theirs")
        return synthetic_corpus(seed=seed, config=str(source))
    return read_corpus(source, label_names=label_names)


def load_dataset(source: str = SYNTHETIC, *, scheme: str | LabelScheme = DEFAULT_SCHEME, seed: int = 0,
                 label_names: Sequence[str] | None = None) -> ERCDataset:
    """Load ``source`` (``'synthetic'``, ``'synthetic-small'``, a pickle path, or a folder or glob of CMU-MOSI/MOSEI
    modality pickles) as an :class:`ERCDataset` under ``scheme`` (:func:`~data_utils.labels.get_scheme`)."""
    return from_corpus(load_corpus(source, seed=seed, label_names=label_names), scheme)


def class_warnings(ds: ERCDataset, split_seed: int = 0, *, test: bool = True) -> list[str]:
    """What a user should know about the classes before training on ``ds`` (with the validation split the runner
    holds out for ``split_seed``): classes without training utterances, a training split of one class, class names
    that differ only by case, and classes without test utterances (their recall and F1 count as 0, so macro-F1 and
    UAR can reach at most (C - k) / C; left out with ``test=False``, for cross-validation, which does not score the
    test split). An empty list when all is well."""
    held = with_validation_split(ds, seed=split_seed) if len(ds.splits.get("train", ())) > 1 else ds
    train, test_counts = held.class_counts("train"), held.class_counts("test")
    out = []
    absent = [c for c, n in train.items() if n == 0]
    present = [c for c, n in train.items() if n > 0]
    if len(present) == 1:
        out.append(f"{ds.source}: the training dialogues hold utterances of one class only ({present[0]!r}); a model "
                   "can learn nothing but that class")
    elif absent:
        out.append(f"{ds.source}: class(es) {', '.join(map(repr, absent))} have no training utterances under scheme "
                   f"{ds.scheme.name!r}; a model cannot learn them")
    folded: dict[str, list[str]] = {}
    for name in ds.class_names:
        folded.setdefault(name.casefold(), []).append(name)
    for names in folded.values():
        if len(names) > 1:
            out.append(f"{ds.source}: classes {' and '.join(map(repr, names))} differ only by case; if they are one "
                       "label, spell it one way")
    for split, counts in (("train", train), ("test", test_counts)) if test else (("train", train),):
        if held.splits.get(split) and not sum(counts.values()):
            out.append(unscored_split_message(held, split))
    untested = untested_classes(held) if test else []
    if untested and sum(test_counts.values()):
        c, k = ds.num_classes, len(untested)
        out.append(f"{ds.source}: class(es) {', '.join(map(repr, untested))} have no test utterances; their recall "
                   f"and F1 count as 0, so macro-F1 and UAR are capped at {c - k}/{c} = {(c - k) / c:.3f}")
    return out


def unscored_split_message(ds: ERCDataset, split: str) -> str:
    """Why ``split`` of ``ds`` cannot be trained on or scored: none of its utterances has a label the scheme scores."""
    return (f"{ds.source}: the {split} split ({len(ds.splits.get(split, ()))} dialogues) has no scored utterance under "
            f"label scheme {ds.scheme.name!r} (classes {', '.join(ds.class_names)}): its labels are blank or outside "
            "the scheme; choose another --scheme, or give those dialogues labels")


def check_scored(ds: ERCDataset, splits: Sequence[str]) -> None:
    """Refuse (``ValueError``, naming file, split and scheme) a dataset whose ``splits`` hold no scored utterance,
    before anything is trained on it."""
    for split in splits:
        if not ds.subset(split).mask.any():
            raise ValueError(unscored_split_message(ds, split))


def untested_classes(ds: ERCDataset) -> list[str]:
    """The classes with no scored utterance in the test split (they cap macro-F1 and UAR; see ``class_warnings``)."""
    return [c for c, n in ds.class_counts("test").items() if n == 0]


# ------------------------------------------------------------------------------------------------ protocol

def with_validation_split(ds: ERCDataset, fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0) -> ERCDataset:
    """Hold out a dialogue-level validation split from the training dialogues.

    A dataset that carries its own validation list keeps it. Otherwise ``fraction`` of the training dialogues
    (at least one) are drawn with ``seed``: the same seed always gives the same split, whatever the hash seed.
    Validation never overlaps train or test.
    """
    if ds.splits.get("valid"):
        return ds
    return dataclasses.replace(ds, splits=validation_splits(ds.splits, fraction, seed, source=ds.source))


def validation_splits(splits: Mapping[str, Sequence[str]], fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0,
                      *, source: str = "") -> dict[str, tuple[str, ...]]:
    """``splits`` with its own ``valid`` list if it has one, else with ``fraction`` of the training dialogues
    (at least one) drawn with ``seed`` into ``valid``: the rule of :func:`with_validation_split`, for anything
    that must hold out the same dialogues before a dataset exists (e.g. fine-tuning a text encoder)."""
    splits = {k: tuple(v) for k, v in splits.items()}
    if splits.get("valid"):
        return splits
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    train = sorted(splits["train"])
    if len(train) < 2:
        raise ValueError(f"{source}: need at least 2 training dialogues to hold one out, got {len(train)}")
    k = min(len(train) - 1, max(1, int(round(fraction * len(train)))))
    rng = np.random.default_rng(seed)
    valid = set(rng.choice(len(train), size=k, replace=False).tolist())
    splits["valid"] = tuple(d for i, d in enumerate(train) if i in valid)
    splits["train"] = tuple(d for i, d in enumerate(train) if i not in valid)
    return splits


def session_folds(ds: ERCDataset, *, within: Sequence[str] = ("train", "valid", "test"),
                  fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0) -> list[tuple[str, ERCDataset]]:
    """Leave-one-session-out folds over the dialogues of the splits ``within``: for every session s (in sorted
    order), the dataset of those dialogues whose ``test`` split is s's dialogues, with ``fraction`` of the other
    sessions' dialogues (at least one) drawn with ``seed`` as ``valid`` and the rest as ``train``. Every dialogue
    is held out exactly once, and validation never comes from the held-out session.

    ``within=("train", "valid", "test")`` (the default) scores every utterance of the corpus once;
    ``("train", "valid")`` cross-validates inside the training dialogues, never touching the test split.
    Raises ``ValueError`` when a dialogue has no session or there are fewer than 2 sessions.
    """
    ids = sorted({d for split in within for d in ds.splits.get(split, ())})
    if not ids:
        raise ValueError(f"{ds.source}: no dialogues in splits {tuple(within)}")
    session = dict(zip(ds.dialogue_ids, ds.sessions))
    unknown = [d for d in ids if not session[d]]
    if unknown:
        raise ValueError(f"{ds.source}: dialogue {unknown[0]!r} (and {len(unknown) - 1} more) has no session; "
                         "sessions come from IEMOCAP's SesNN id prefix, a 'session' column of a transcripts CSV or "
                         "the pickle's extras 'sessions'")
    sessions = sorted({session[d] for d in ids})
    if len(sessions) < 2:
        raise ValueError(f"{ds.source}: cross-validation by session needs at least 2 sessions, got {sessions}")
    pool = ds.subset(ids)
    folds = []
    for s in sessions:
        held_out = tuple(d for d in ids if session[d] == s)
        rest = {"train": tuple(d for d in ids if session[d] != s), "test": held_out}
        splits = validation_splits(rest, fraction, seed, source=f"{ds.source} (fold {s})")
        folds.append((s, dataclasses.replace(pool, splits=splits)))
    return folds


@dataclass(frozen=True)
class Standardizer:
    """Per-modality mean and standard deviation (float64, shape (D,)) over the real utterances of the training
    dialogues.

    Computed in float64, so features of any finite float32 scale (1e-30 or 1e30) standardise to unit variance. A
    dimension whose spread is within float32's rounding of its magnitude (std <= :data:`CONSTANT_RTOL` times the
    largest absolute value; an all-zero dimension too) is constant: it is centred and left unscaled. A modality whose
    typical standard deviation is beyond :data:`EXTREME_SCALE` (or below its inverse) gets a ``DataWarning``: the
    models see it standardised, but a run with ``standardize=False`` would not.
    """

    mean: Mapping[str, np.ndarray]
    std: Mapping[str, np.ndarray]

    CONSTANT_RTOL = 1e-6
    EXTREME_SCALE = 1e6

    @classmethod
    def fit(cls, ds: ERCDataset, split: str = "train") -> "Standardizer":
        train = ds.subset(split)
        if not train.present.any():
            raise ValueError(f"{ds.source}: split {split!r} has no utterances to fit a standardizer on")
        mean, std = {}, {}
        for m, a in train.features.items():
            rows = a[train.present].astype(np.float64)
            mean[m] = rows.mean(axis=0)
            spread = rows.std(axis=0)
            constant = spread <= cls.CONSTANT_RTOL * np.abs(rows).max(axis=0)
            std[m] = np.where(constant, 1.0, spread)
            typical = float(np.median(spread[~constant])) if (~constant).any() else 1.0
            if not 1 / cls.EXTREME_SCALE <= typical <= cls.EXTREME_SCALE:
                warnings.warn(f"{ds.source}: the {m} features have an extreme scale (median standard deviation "
                              f"{typical:.3g} over the training utterances); they are standardised on the training "
                              f"dialogues, as models need, but check how they were extracted", DataWarning,
                              stacklevel=2)
        return cls(mean, std)

    def transform(self, ds: ERCDataset) -> ERCDataset:
        if ds.standardized:
            raise ValueError(f"{ds.source}: features are standardized already")
        keep = ds.present[..., None]
        features = {m: np.where(keep, (a.astype(np.float64) - self.mean[m]) / self.std[m], 0.0).astype(np.float32)
                    for m, a in ds.features.items()}
        return dataclasses.replace(ds, features=features, standardized=True)


def standardize(ds: ERCDataset, split: str = "train") -> ERCDataset:
    """Standardize every modality with statistics fitted on ``split`` only (never on validation or test)."""
    return Standardizer.fit(ds, split).transform(ds)
