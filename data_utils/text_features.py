"""Utterance features from transcript text, every fitted step fitted on the training dialogues only.

Encoders:

- ``tfidf`` (default): TF-IDF of words and word pairs (``!`` and ``?`` count as words), then a truncated SVD to
  ``dim`` components (default 100). Both are fitted on the ``train`` split's utterances, never on valid or test, then
  applied to every utterance.
- ``sentence-transformer``: all-MiniLM-L6-v2 sentence embeddings (384 wide), from the optional ``text`` extra, run
  offline in a subprocess that never imports TensorFlow. With ``dim`` set, a PCA fitted on the training
  utterances reduces them to ``dim``. With ``fine_tune_epochs`` > 0 the encoder is first fine-tuned as an
  utterance classifier on the training dialogues' labels (under ``scheme``), keeping the epoch with the best
  macro-F1 on the validation dialogues: the file's own ``valid`` split, else the dialogues that
  :func:`data_utils.dataset.with_validation_split` will hold out, so every later experiment selects its epochs on
  dialogues the encoder never trained on. Test dialogues are only embedded.

  Cross-fitting (``cross_fit=True``, the default with fine-tuning): an encoder fine-tuned on the utterances it then
  embeds gives them cleaner features than any unseen utterance will have, and a model trained on them learns to
  trust features that are less reliable at test time. So the training dialogues are cut into folds (their
  recording sessions where there are at least two, else ``CROSS_FIT_FOLDS`` seeded folds); each fold is embedded
  by an encoder fine-tuned on the other folds only, and the validation and test dialogues by one fine-tuned on all
  training dialogues. Every encoder selects its epoch on the validation dialogues. It costs one fine-tuning per
  fold plus one (five on IEMOCAP).

What was fitted (``build_text_corpus(..., fitted={})``) is what ``mser features text`` saves beside the features as
their extractor (:mod:`data_utils.extractors`), which embeds new utterances as the validation and test ones were.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline

from .corpus import Corpus, DataFormatError, write_corpus
from .dataset import validation_splits
from .labels import DEFAULT_SCHEME, get_scheme
from .sentence_encoder import INSTALL_TEXT_EXTRA, MissingExtraError, sentence_embeddings  # noqa: F401 (re-exported)
from .transcripts import read_transcripts

ENCODERS = ("tfidf", "sentence-transformer")
DEFAULT_TFIDF_DIM = 100
CROSS_FIT_FOLDS = 4  # folds of the training dialogues when they have fewer than two sessions
TFIDF_SETTINGS = dict(ngram_range=(1, 2), sublinear_tf=True, min_df=2, strip_accents="unicode",
                      token_pattern=r"(?u)\b\w+\b|[!?]")


def build_text_corpus(transcripts_path, *, encoder: str = "tfidf", dim: int | None = None, seed: int = 0,
                      fine_tune_epochs: int = 0, scheme: str = DEFAULT_SCHEME, cross_fit: bool = True,
                      fitted: dict | None = None) -> Corpus:
    """Read a transcripts CSV and give it text features (the only modality).

    ``dim``: the feature width; by default 100 for ``tfidf`` and the model's own 384 for ``sentence-transformer``.
    ``fine_tune_epochs``, ``scheme`` and ``cross_fit``: see the module docstring (``sentence-transformer`` only).
    ``fitted``, if given, receives what :func:`encode_text` fitted, for a saved extractor
    (:func:`data_utils.extractors.save_text_extractor`).
    """
    corpus = read_transcripts(transcripts_path)
    report = {}
    features = encode_text(corpus, encoder=encoder, dim=dim, seed=seed, fine_tune_epochs=fine_tune_epochs,
                           scheme=scheme, report=report, cross_fit=cross_fit, fitted=fitted)
    width = next(iter(features.values())).shape[1]
    fitted_on = len((validation_splits(corpus.splits) if fine_tune_epochs else corpus.splits)["train"])
    tuned = ""
    if fine_tune_epochs:
        final = report["encoders"][-1]
        tuned = (f", fine-tuned on {scheme} labels for {fine_tune_epochs} epoch(s), epoch {final['best_epoch']} "
                 f"kept (validation macro-F1 {final['best_valid_macro_f1']:.4f})")
        if len(report["encoders"]) > 1:
            folds = report["encoders"][:-1]
            tuned += (f"; cross-fitted: the training dialogues embedded by {len(folds)} encoders that never saw "
                      f"them ({', '.join(f['fold'] for f in folds)}; epochs kept "
                      f"{', '.join(str(f['best_epoch']) for f in folds)})")
    description = (f"text features from {Path(transcripts_path).name}: {encoder}{tuned}, dim {width}, seed {seed}; "
                   f"fitted steps saw the {fitted_on} training dialogues only")
    dialogues = {did: dataclasses.replace(d, features={"text": features[did]}) for did, d in corpus.dialogues.items()}
    return dataclasses.replace(corpus, dialogues=dialogues, modalities=("text",), description=description)


def encode_text(corpus: Corpus, *, encoder: str = "tfidf", dim: int | None = None, seed: int = 0,
                fine_tune_epochs: int = 0, scheme: str = DEFAULT_SCHEME, report: dict | None = None,
                cross_fit: bool = True, fitted: dict | None = None) -> dict[str, np.ndarray]:
    """Per dialogue, an (utterances, dim) float32 array; whatever is fitted sees the ``train`` split only.

    ``report``, if given, receives what fine-tuning measured: ``encoders``, one entry per fine-tuned encoder (the
    folds of cross-fitting, then the final one), each with its per-epoch validation macro-F1 and the epoch kept.
    ``fitted``, if given, receives how to embed new utterances as the validation and test ones were: ``encoder``,
    ``dim`` (the width), ``seed``, ``train_utterances``, and ``tfidf`` (the fitted :func:`fit_tfidf` pipeline) or
    ``pca`` (the fitted PCA, or None), ``final_encoder`` (with fine-tuning: the safetensors bytes of the encoder that
    embedded the validation and test dialogues, else None), ``max_seq_length`` (its token limit, None: the
    model's own), ``fine_tune_epochs``, ``scheme``, ``cross_fit``."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown text encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    if dim is not None and dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim}")
    if fine_tune_epochs < 0:
        raise ValueError(f"fine_tune_epochs must be 0 (no fine-tuning) or more, got {fine_tune_epochs}")
    if fine_tune_epochs and encoder != "sentence-transformer":
        raise ValueError(f"only the sentence-transformer encoder can be fine-tuned, not {encoder!r}")
    order = list(corpus.dialogues)
    sentences = [s for did in order for s in corpus.dialogues[did].sentences]
    train = set(corpus.splits["train"])
    is_train = np.array([did in train for did in order for _ in corpus.dialogues[did].sentences])
    found = {"encoder": encoder, "seed": seed}
    try:
        if encoder == "tfidf":
            pipeline = fit_tfidf([s for s, t in zip(sentences, is_train) if t], dim=dim or DEFAULT_TFIDF_DIM,
                                 seed=seed)
            flat = pipeline.transform(sentences)
            found["tfidf"] = pipeline
        else:
            jobs = _fine_tune_jobs(corpus, order, fine_tune_epochs, scheme, seed, cross_fit) \
                if fine_tune_epochs else None
            report = {} if report is None else report
            flat = sentence_embeddings(sentences, jobs=jobs, report=report, keep_final=fitted is not None)
            if jobs is not None:
                is_train = np.zeros(len(sentences), bool)
                is_train[jobs[-1]["fine_tune"]["train"]] = True  # the PCA sees the training utterances only
            pca = _fit_pca(flat[is_train], dim=dim, seed=seed) if dim is not None else None
            if pca is not None:
                flat = pca.transform(flat)
            final = report.get("encoders", [{}])[-1] if jobs else {}
            found.update(pca=pca, final_encoder=report.pop("final_encoder", None) if jobs else None,
                         max_seq_length=final.get("max_seq_length"), fine_tune_epochs=fine_tune_epochs,
                         scheme=scheme if jobs else None, cross_fit=bool(jobs) and cross_fit)
    except ValueError as e:
        raise DataFormatError(corpus.source, str(e), field="text") from e
    if fitted is not None:
        fitted.update(found, dim=int(flat.shape[1]), train_utterances=int(is_train.sum()))
    bounds = np.cumsum([len(corpus.dialogues[did]) for did in order])[:-1]
    return dict(zip(order, np.split(np.ascontiguousarray(flat, dtype=np.float32), bounds)))


def fit_tfidf(sentences: Sequence[str], *, dim: int = DEFAULT_TFIDF_DIM, seed: int = 0) -> Pipeline:
    """A fitted pipeline ``tfidf`` (``TfidfVectorizer``) -> ``svd`` (``TruncatedSVD(dim, random_state=seed)``)."""
    vectorizer = TfidfVectorizer(**TFIDF_SETTINGS)
    try:
        x = vectorizer.fit_transform(sentences)
    except ValueError as e:  # no term occurs in two training utterances
        raise ValueError(f"the training utterances yield no TF-IDF terms ({e})") from None
    _check_dim(dim, x.shape, "TF-IDF terms (words and word pairs in at least 2 training utterances)")
    svd = TruncatedSVD(n_components=dim, random_state=seed).fit(x)
    return Pipeline([("tfidf", vectorizer), ("svd", svd)])


def _fit_pca(train: np.ndarray, *, dim: int, seed: int) -> PCA:
    _check_dim(dim, train.shape, "embedding dimensions")
    return PCA(n_components=dim, random_state=seed).fit(train)


def _check_dim(dim: int, shape: tuple[int, int], columns: str) -> None:
    need = max(dim, 2)
    if need > min(shape):
        raise ValueError(f"dim={dim} needs at least {need} training utterances and {need} {columns}; there are "
                         f"{shape[0]} and {shape[1]}. Lower dim, or add training text")


# ------------------------------------------------------------------------------------------ sentence-transformer

def _fine_tune_spec(corpus: Corpus, order: list[str], epochs: int, scheme: str, seed: int,
                    exclude: frozenset[str] = frozenset()) -> dict:
    """What the worker's ``fine_tune`` needs: flat class indices and the train / validation utterance indices
    (training dialogues in ``exclude`` left out)."""
    scheme = get_scheme(scheme, corpus.label_names, source=corpus.source)
    splits = validation_splits(corpus.splits, source=corpus.source)  # the runner's rule, split_seed 0
    role = {**{d: "train" for d in splits["train"] if d not in exclude}, **{d: "valid" for d in splits["valid"]}}
    labels, rows = [], {"train": [], "valid": []}
    for did in order:
        d = corpus.dialogues[did]
        if did in role:
            rows[role[did]].extend(range(len(labels), len(labels) + len(d)))
        labels.extend(scheme.class_index(d.labels, source=f"{corpus.source}: dialogue {did!r}").tolist())
    return {"labels": labels, "train": rows["train"], "valid": rows["valid"], "num_classes": scheme.num_classes,
            "epochs": epochs, "seed": seed}


def cross_fit_folds(corpus: Corpus, train: Sequence[str], seed: int = 0) -> dict[str, tuple[str, ...]]:
    """The training dialogues cut into folds: by recording session where they span at least two, else into
    ``CROSS_FIT_FOLDS`` folds drawn with ``seed`` (fewer if there are fewer dialogues). Fold name -> dialogue ids."""
    train = sorted(train)
    sessions = {did: corpus.session(did) for did in train}
    if all(sessions.values()) and len(set(sessions.values())) >= 2:
        return {s: tuple(d for d in train if sessions[d] == s) for s in sorted(set(sessions.values()))}
    k = min(CROSS_FIT_FOLDS, len(train))
    if k < 2:
        raise ValueError(f"cross-fitting needs at least 2 training dialogues, got {len(train)}")
    order = np.random.default_rng(seed).permutation(len(train))
    return {f"fold{i + 1}": tuple(sorted(train[j] for j in order[i::k])) for i in range(k)}


def _fine_tune_jobs(corpus: Corpus, order: list[str], epochs: int, scheme: str, seed: int, cross_fit: bool
                    ) -> list[dict]:
    """The worker's jobs: each fine-tunes a fresh encoder and embeds some utterances. Without cross-fitting, one
    job embeds everything; with it, one job per fold embeds that fold's training utterances, and a last one,
    fine-tuned on every training dialogue, embeds the rest (validation, test)."""
    final = _fine_tune_spec(corpus, order, epochs, scheme, seed)
    everything = list(range(len(final["labels"])))
    if not cross_fit:
        return [{"name": "all training dialogues", "fine_tune": final, "embed": everything}]
    splits = validation_splits(corpus.splits, source=corpus.source)
    start = dict(zip(order, np.cumsum([0] + [len(corpus.dialogues[d]) for d in order])))
    jobs, covered = [], set()
    for name, dialogues in cross_fit_folds(corpus, splits["train"], seed).items():
        rows = [i for d in dialogues for i in range(start[d], start[d] + len(corpus.dialogues[d]))]
        covered.update(rows)
        jobs.append({"name": name, "fine_tune": _fine_tune_spec(corpus, order, epochs, scheme, seed,
                                                                exclude=frozenset(dialogues)), "embed": rows})
    jobs.append({"name": "all training dialogues", "fine_tune": final,
                 "embed": [i for i in everything if i not in covered]})
    return jobs


def write_text_features(transcripts_path, out, *, encoder: str = "tfidf", dim: int | None = None, seed: int = 0,
                        fine_tune_epochs: int = 0, scheme: str = DEFAULT_SCHEME, cross_fit: bool = True,
                        overwrite: bool = False, synthetic: bool = False) -> Corpus:
    """What ``mser features text`` does: the text features of a transcripts CSV (:func:`build_text_corpus`) written
    to the corpus pickle ``out``, with the fitted extractor saved beside it (:mod:`data_utils.extractors`) and
    recorded in it. Every output is checked before any encoding (never onto the transcripts, nothing replaced
    without ``overwrite``), the extractor is written first and removed again if the features cannot be written.
    ``synthetic``: the transcripts came from synthetic data (:func:`data_utils.transcripts.write_transcripts` of the
    built-in data), so the features file says so and every report built on it is marked synthetic. Returns the
    corpus as written."""
    import shlex

    from .extractor_files import check_extractor_outputs, remove_extractor
    from .extractors import save_text_extractor, text_extractor_parts
    from .fileio import check_output_path

    check_output_path(out, overwrite=overwrite, option="--out", inputs=[transcripts_path])
    parts = text_extractor_parts(encoder, dim, fine_tune_epochs)
    check_extractor_outputs(out, "text", parts, overwrite=overwrite, inputs=[transcripts_path, out])
    fitted: dict = {}
    corpus = build_text_corpus(transcripts_path, encoder=encoder, dim=dim, seed=seed,
                               fine_tune_epochs=fine_tune_epochs, scheme=scheme, cross_fit=cross_fit, fitted=fitted)
    argv = ["mser", "features", "text", "--transcripts", str(transcripts_path), "--out", str(out), "--encoder",
            encoder, "--seed", str(seed)] + (["--dim", str(dim)] if dim is not None else [])
    if fine_tune_epochs:
        argv += ["--fine-tune-epochs", str(fine_tune_epochs), "--scheme", scheme] + ([] if cross_fit else
                                                                                     ["--no-cross-fit"])
    record = save_text_extractor(out, fitted, created_by=shlex.join(argv), overwrite=overwrite,
                                 fitted_on={"transcripts": Path(transcripts_path).name})
    corpus = dataclasses.replace(corpus, extractors={"text": record}, synthetic=bool(synthetic or corpus.synthetic))
    try:
        write_corpus(corpus, out, overwrite=overwrite)
    except BaseException:
        remove_extractor(out, "text")
        raise
    remove_extractor(out, "text", keep=parts)  # overwrite: what a replaced extractor had beside these
    return corpus
