"""A run's plan: which experiment, on which folds, scored where, identified by which ``config.json``.

The protocol's first two steps live here: the data are loaded under a label scheme, a dialogue-level validation
split is held out from the training dialogues (fixed by ``split_seed``, the same for every model and seed), or, with
``cv``, one fold per recording session (:func:`data_utils.dataset.session_folds`); every modality is standardised on
the training dialogues. A :class:`Plan` is made once per experiment, in the process that starts the run, and
shipped to the workers; its ``document`` is the run directory's ``config.json``, whose :func:`fingerprint` decides
whether an existing run directory may be resumed.
"""
from __future__ import annotations

import copy
import itertools
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping

from data_utils.corpus import SPLITS, DataWarning
from data_utils.dataset import (ERCDataset, Standardizer, check_scored, class_warnings, load_dataset, session_folds,
                                with_validation_split)
from data_utils.identity import describe_source
from data_utils.labels import DEFAULT_SCHEME

from ..config import (CV_MODES, DEFAULT_METRIC, MAX_SEEDS, TRAIN_SETTINGS_ADDED, Experiment, TrainConfig,
                      parse_overrides)
from ..metrics import METRICS
from ..experiments import EXPERIMENTS, get_experiment
from ..machine.provenance import provenance
from ..results import RunResult
from .inputs import inputs_document


def resolve_experiment(experiment: str | Experiment, overrides=None) -> Experiment:
    """A registered name or an :class:`Experiment`, checked against the architecture registry
    (:func:`model_utils.registry.check_experiment`: where an experiment is used, as scikit-learn checks parameters
    at ``fit``), with ``overrides`` applied (``{"units": 32}`` or ``["units=32", "train.learning_rate=3e-4"]``;
    :meth:`Experiment.derive`). Raises ``KeyError`` for an unknown name, ``ValueError`` for what does not fit."""
    from ..architectures import check_experiment, default_hparams

    exp = get_experiment(experiment) if isinstance(experiment, str) else experiment
    if not isinstance(exp, Experiment):
        raise TypeError(f"expected an experiment name or an Experiment, got {type(experiment).__name__}")
    return check_experiment(exp).derive(overrides, default_hparams(exp.arch))


def resolve_experiments(experiments: Iterable[str | Experiment], overrides=None) -> list[Experiment]:
    """Several experiments, each resolved (:func:`resolve_experiment`) with the part of ``overrides`` that fits it.

    ``overrides`` is either for the batch (``["train.learning_rate=3e-4", "units=32"]`` or a dict): a training
    setting (``train.*``) applies to every experiment, a hyperparameter to those whose builder takes it; or a
    mapping by experiment name (``{"timnet-text": ["filters=16"]}``), each entry for that experiment alone (entries
    for registered experiments outside the batch are left for the batches that run them). ``ValueError`` for a
    hyperparameter no experiment of the batch takes (naming the experiments and what they take), or a mapping key
    that is no experiment."""
    exps = [get_experiment(e) if isinstance(e, str) else e for e in experiments]
    names = [e.name for e in exps]
    if isinstance(overrides, Mapping) and any(k in names or k in EXPERIMENTS or _per_experiment(v)
                                              for k, v in overrides.items()):
        stray = sorted(k for k in overrides if k not in names and k not in EXPERIMENTS)
        if stray:
            raise ValueError(f"overrides by experiment name {', '.join(map(repr, stray))}, which is no experiment "
                             f"(this batch runs {', '.join(names) or 'nothing'}; `mser list` shows them all)")
        return [resolve_experiment(e, overrides.get(e.name)) for e in exps]
    split = overrides_by_experiment(exps, overrides)
    return [resolve_experiment(e, split[e.name]) for e in exps]


def _per_experiment(value) -> bool:
    """Whether a value of an overrides mapping is one experiment's overrides (a dict, or ``KEY=VALUE`` strings)
    rather than a hyperparameter's value (a number, a name, a list of numbers)."""
    return isinstance(value, Mapping) or (isinstance(value, (list, tuple)) and bool(value) and all(
        isinstance(v, str) and "=" in v for v in value))


def overrides_by_experiment(experiments: Iterable[Experiment], overrides) -> dict[str, dict]:
    """``overrides`` for a batch (see :func:`resolve_experiments`) split by experiment name: every training setting
    for every experiment, each hyperparameter for those whose builder takes it. ``ValueError`` for a hyperparameter
    that none of them takes."""
    from ..architectures import check_experiment, default_hparams

    exps = list(experiments)
    parsed = parse_overrides(overrides) if overrides else {}
    takes = {e.name: default_hparams(check_experiment(e).arch) for e in exps}
    unused = [k for k in parsed if not k.startswith("train.") and not any(k in t for t in takes.values())]
    if unused:
        groups: dict[tuple, list[str]] = {}
        for n, t in takes.items():
            groups.setdefault(tuple(t), []).append(n)
        known = "; ".join(f"{', '.join(ns)}: {', '.join(t) or 'none'}" for t, ns in groups.items())
        raise ValueError(f"override {', '.join(map(repr, unused))} fits no experiment of this batch (their "
                         f"hyperparameters: {known or 'no experiments'}); a training setting is train.<setting>, and "
                         "a mapping by experiment name sets one experiment")
    return {n: {k: v for k, v in parsed.items() if k.startswith("train.") or k in t} for n, t in takes.items()}


def run_dir_name(experiment: Experiment, cv: str | None = None, metric: str | None = None) -> str:
    """The folder a run goes into by default: the experiment's name, overrides as ``--key=value``, a metric other
    than :data:`~model_utils.config.DEFAULT_METRIC` as ``--metric-<name>``, CV marked."""
    name = experiment.base + "".join(f"--{k}={v}" for k, v in sorted(experiment.overrides.items()))
    name += f"--metric-{metric}" if metric and metric != DEFAULT_METRIC else ""
    name = "".join(c if c.isalnum() or c in "-_.=," else "_" for c in name)
    return name + (f"--cv-{cv}" if cv else "")


def check_modalities(experiment: Experiment, ds: ERCDataset) -> None:
    missing = [m for m in experiment.modalities if m not in ds.modalities]
    if missing:
        fit = [e.name for e in EXPERIMENTS.values() if set(e.modalities) <= set(ds.modalities)]
        raise ValueError(
            f"experiment {experiment.name!r} needs {', '.join(missing)} features, which {ds.source} does not "
            f"have (it has {', '.join(ds.modalities)}); experiments these data fit: {', '.join(fit) or 'none'}"
        )


def standardizer(ds: ERCDataset, config: TrainConfig) -> Standardizer | None:
    """The statistics that standardise ``ds`` (fitted on its training dialogues), or None when ``config`` says not
    to standardise."""
    return Standardizer.fit(ds, "train") if config.standardize else None


def splits(ds: ERCDataset, config: TrainConfig, stats: Standardizer | None = None
           ) -> tuple[ERCDataset, ERCDataset, ERCDataset]:
    """Train, validation and test sets of ``ds``, standardised by ``stats`` (default: fitted on its training
    dialogues) when ``config.standardize``."""
    if config.standardize:
        ds = (stats or Standardizer.fit(ds, "train")).transform(ds)
    return ds.subset("train"), ds.subset("valid"), ds.subset("test")


def prepare_data(experiment: str | Experiment, data: str | ERCDataset = "synthetic", *,
                 scheme: str = DEFAULT_SCHEME, split_seed: int = 0, config: TrainConfig | None = None
                 ) -> tuple[ERCDataset, ERCDataset, ERCDataset]:
    """Train, validation and test sets for ``experiment`` under the protocol above (standardised on the training
    dialogues unless its training config says otherwise)."""
    exp = resolve_experiment(experiment)
    ds = data if isinstance(data, ERCDataset) else load_dataset(data, scheme=scheme)
    check_modalities(exp, ds)
    return splits(with_validation_split(ds, seed=split_seed), config or exp.train_config())


@dataclass
class Plan:
    """What every seed of a run shares: the experiment, its training config, the folds (one for a plain run) and the
    scored set, and the ``config.json`` document that identifies the run."""

    experiment: Experiment
    config: TrainConfig
    folds: list[tuple[str, tuple[ERCDataset, ERCDataset, ERCDataset]]]
    scored: ERCDataset
    document: dict
    data: dict
    inputs: dict  # inputs.json (model_utils.run.inputs): how to build the inputs of the run's models
    statistics: dict  # standardization.npz: each fold's standardisation statistics


def load_data(data: str | ERCDataset, scheme: str) -> tuple[ERCDataset, str]:
    """The dataset, and how runs name it: the name the user gave (a preset, a path), or the dataset's source."""
    if isinstance(data, ERCDataset):
        return data, data.source
    return load_dataset(data, scheme=scheme), str(data)


def make_plan(experiment: Experiment, data: str | ERCDataset, *, scheme: str, split_seed: int, epochs: int | None,
              cv: str | None, path: str | None = None, shared: dict | None = None, metric: str | None = None) -> Plan:
    """What every seed of ``experiment`` on ``data`` shares (:class:`Plan`): made once, in the process that runs
    the experiment (workers receive it, :func:`model_utils.run.lanes.worker_init`). ``path``: how the run names
    its data. ``shared``: a dict that plans of one batch of experiments share, so that experiments with the same
    folds hold the same fold datasets (shipped to a worker once, not once per experiment). ``metric``: what the run
    is judged by (default: the one the data declare, else :data:`~model_utils.config.DEFAULT_METRIC`); it resolves
    the ``'auto'`` training settings (:meth:`~model_utils.config.TrainConfig.resolved`) and heads its reports."""
    from ..architectures import architecture_code, default_hparams

    ds, name = load_data(data, scheme)
    check_modalities(experiment, ds)
    for message in class_warnings(ds, split_seed, test=cv is None):  # once per message: Python's warning filter
        warnings.warn(message, DataWarning, stacklevel=2)
    metric = judged_by(metric, ds)
    config = experiment.train_config(epochs=epochs, metric=metric)
    info = {"path": path or name, "synthetic": bool(ds.synthetic), "label_scheme": ds.scheme.name,
            **({"corpus": ds.corpus} if ds.corpus else {}),
            **describe_source(ds.source, synthetic=ds.synthetic, dialogues=len(ds), corpus=ds.corpus)}
    key = (split_seed, cv, config.standardize)  # all that decides the folds
    made = shared.get(key) if shared is not None else None
    if made is None:
        made = held_out(ds, config, split_seed=split_seed, cv=cv)
        if shared is not None:
            shared[key] = made
    folds, scored, evaluation, standardizers = made
    hparams = {**default_hparams(experiment.arch), **experiment.hparams}
    default_epochs = experiment.train_config().epochs
    differs = sorted(experiment.overrides) + (["epochs"] if config.epochs != default_epochs else [])
    document = {
        "experiment": experiment.record(),
        "architecture_code": architecture_code(experiment.arch),
        "hparams": {k: list(v) if isinstance(v, tuple) else v for k, v in hparams.items()},
        "train_config": {k: v for k, v in vars(config).items()},
        "epochs_cap": config.epochs,
        "data": info,
        "split_seed": split_seed,
        "evaluation": copy.deepcopy(evaluation),
        "differs_from_defaults": differs,
        "metric": metric,
    }
    from ..architectures import required_inputs

    identity = experiment.hparams.get("speaker_identity", "party")
    speaker = next((n for n in required_inputs(experiment.arch, experiment.modalities, identity)
                    if n in ("party", "speaker")), None)
    seen = {d for _, (train, valid, _) in folds for d in (*train.dialogue_ids, *valid.dialogue_ids)}
    inputs, statistics = inputs_document(experiment, ds, info, standardizers, speaker, seen)
    return Plan(experiment, config, folds, scored, document, info, inputs, statistics)


def judged_by(metric: str | None, ds: ERCDataset) -> str:
    """The metric a run on ``ds`` is judged by: ``metric`` if given, else the one the data declare (``extras.metric``),
    else :data:`~model_utils.config.DEFAULT_METRIC`; ``ValueError`` naming where an unknown one came from."""
    chosen = metric or ds.metric or DEFAULT_METRIC
    if chosen not in METRICS:
        where = f"{ds.source}: field extras.metric: " if not metric else ""
        raise ValueError(f"{where}unknown metric {chosen!r}; choose one of {', '.join(METRICS)}")
    return chosen


def held_out(ds: ERCDataset, config: TrainConfig, *, split_seed: int, cv: str | None
             ) -> tuple[list, ERCDataset, dict, dict]:
    """The folds of a run on ``ds`` (``[(session, (train, valid, test))]``: one fold with session '' for a plain
    run), the scored set, the ``evaluation`` record of its ``config.json`` and each fold's standardisation
    statistics (by session; None when ``config`` does not standardise). The validation dialogues are drawn from the
    training dialogues by ``split_seed``; every modality is standardised on each fold's training dialogues when
    ``config.standardize``."""
    if cv is None:
        held = with_validation_split(ds, seed=split_seed)
        check_scored(held, SPLITS)  # before anything trains
        pool = [("", held)]
    else:
        if cv not in CV_MODES:
            raise ValueError(f"unknown cross-validation {cv!r}; choose one of {', '.join(CV_MODES)}")
        pool = session_folds(ds, within=CV_MODES[cv], seed=split_seed)
    standardizers = {s: standardizer(fold, config) for s, fold in pool}
    folds = [(s, splits(fold, config, standardizers[s])) for s, fold in pool]
    if cv is None:
        scored = folds[0][1][2]
        evaluation = {"kind": "test-split", "validation_dialogues": list(folds[0][1][1].dialogue_ids)}
    else:
        scored = pool[0][1].subset(sorted(d for _, fold in pool for d in fold.splits["test"]))
        evaluation = {"kind": f"cv-{cv}", "within": list(CV_MODES[cv]),
                      "folds": [{"session": s, "test_dialogues": len(split[2]),
                                 "validation_dialogues": list(split[1].dialogue_ids)} for s, split in folds]}
    return folds, scored, evaluation, standardizers


def fingerprint(document: Mapping) -> dict:
    """The parts of a ``config.json`` that decide the numbers: the architecture (and its builder's code), the
    modalities, every hyperparameter and training setting, the data's content and label scheme, the split seed and
    what is scored. Not the names, descriptions or where the data file sits."""
    exp, data, evaluation = document.get("experiment", {}), document.get("data", {}), document.get("evaluation", {})
    train = document.get("train_config")
    if isinstance(train, Mapping):  # a run recorded before a setting existed trained as its neutral default does
        train = {**TRAIN_SETTINGS_ADDED, **train}
    return copy.deepcopy({
        "architecture": exp.get("arch"), "architecture_code": document.get("architecture_code"),
        "modalities": exp.get("modalities"), "hparams": document.get("hparams"),
        "train_config": train,
        "data": {"sha256": data.get("sha256"), "label_scheme": data.get("label_scheme")},
        "split_seed": document.get("split_seed"),
        "evaluation": {"kind": evaluation.get("kind"), "within": evaluation.get("within")},
    })


def empty_result(plan: Plan, command: str | None) -> RunResult:
    scored = plan.scored
    return RunResult(plan.experiment, dict(plan.data), scored.class_names, scored.labels, scored.mask,
                     scored.dialogue_ids, config=plan.document, provenance=provenance(command), test=scored)


def check_build(plan: Plan) -> None:
    """Build the model once before anything is written or trained, so a bad hyperparameter value or a builder
    that breaks the output contract fails at once, not after a run folder is claimed."""
    import keras

    from ..architectures import build_for

    keras.backend.clear_session()
    try:
        build_for(plan.experiment, plan.folds[0][1][0])
    except (KeyError, TypeError, ValueError, IndexError) as e:
        detail = repr(e.args[0]) if isinstance(e, KeyError) and e.args else " ".join(str(e).split())[:300]
        given = ", ".join(f"{k}={v!r}" for k, v in sorted(plan.experiment.hparams.items()))
        raise ValueError(f"experiment {plan.experiment.name!r} cannot be built ({type(e).__name__}: {detail}); its "
                         f"hyperparameters: {given or 'the defaults'}") from e
    finally:
        keras.backend.clear_session()


def seed_list(seeds: Iterable[int], exp: Experiment) -> list[int]:
    """``seeds`` as a list of distinct seeds in 0 … 2**32 - 1, at most :data:`MAX_SEEDS` of them (checked before the
    list is built: ``range(10**11)`` is refused at once); ``ValueError`` otherwise."""
    if isinstance(seeds, range) and len(seeds) > MAX_SEEDS:
        raise ValueError(f"{exp.name}: {len(seeds)} seeds asked for; at most {MAX_SEEDS} are run")
    seeds = [int(s) for s in itertools.islice(seeds, MAX_SEEDS + 1)]
    if len(seeds) > MAX_SEEDS:
        raise ValueError(f"{exp.name}: more than {MAX_SEEDS} seeds asked for; at most {MAX_SEEDS} are run")
    if not seeds:
        raise ValueError(f"{exp.name}: no seeds to run")
    if any(not 0 <= s < 2 ** 32 for s in seeds):
        raise ValueError(f"{exp.name}: seeds must be in 0 … 2**32 - 1, got {short(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{exp.name}: seeds {short(seeds)} repeat a seed")
    return seeds


def short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
