"""Synthetic IEMOCAP-shaped conversations: the built-in data for demos and tests.

**These are not IEMOCAP data and numbers on them are not IEMOCAP results.** They have IEMOCAP's shape so every
path of the suite runs without the real file:

- 120 training and 31 test dialogues, lengths drawn like IEMOCAP's (mean about 49, longest exactly 110), two
  speakers ``F`` and ``M`` who alternate most of the time;
- the six IEMOCAP labels with IEMOCAP's training priors (angry = ang+fru is about 41 % under ``merged4``);
- emotional inertia: a speaker keeps their previous label with probability ``persistence``, otherwise draws
  from the dialogue's own mood (a Dirichlet draw around the global prior);
- text 100-d, audio 100-d, visual 512-d features: Gaussian noise plus a class signal in a low-rank subspace
  whose strength is set per modality (text strongest, audio middle, visual weakest), plus a per-speaker offset
  in every dialogue; hap/exc and ang/fru have similar signals;
- for a ``context_only`` fraction of utterances no modality carries the label: only the dialogue around them
  (inertia) can recover it.

The generator writes Poria et al.'s pickle layout and reads it back through the same loader as real data; the
result is flagged ``synthetic`` so every table and report built on it says so. Deterministic for a seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from .corpus import Corpus, Dialogue, corpus_from_bytes, corpus_to_bytes, write_corpus
from .labels import IEMOCAP6

# Training priors of the six IEMOCAP labels (hap, sad, neu, ang, exc, fru) on Poria et al.'s 120 dialogues.
IEMOCAP6_PRIOR = (0.0867, 0.1444, 0.2279, 0.1606, 0.1277, 0.2527)
WIDTHS = {"text": 100, "audio": 100, "visual": 512}


@dataclass(frozen=True)
class SyntheticConfig:
    n_train: int = 120
    n_test: int = 31
    mean_length: float = 49.0
    sd_length: float = 17.0
    min_length: int = 8
    max_length: int = 110
    persistence: float = 0.72  # P(speaker keeps their previous label); IEMOCAP's is about 0.72
    mood_concentration: float = 2.0  # lower = dialogues dominated by fewer emotions
    switch_prob: float = 0.69  # P(next utterance is by the other speaker); IEMOCAP's is about 0.69
    strength: Mapping[str, float] = field(default_factory=lambda: {"text": 1.0, "audio": 0.8, "visual": 0.7})
    signal_rank: int = 6
    context_only: float = 0.25
    speaker_offset: float = 0.3
    widths: Mapping[str, int] = field(default_factory=lambda: dict(WIDTHS))


# Named presets accepted wherever a data source is: 'synthetic' (IEMOCAP-sized) and 'synthetic-small' (for
# smoke tests and quick notebook runs: 20 training and 6 test dialogues of up to 40 utterances).
PRESETS: dict[str, SyntheticConfig] = {
    "synthetic": SyntheticConfig(),
    "synthetic-small": SyntheticConfig(n_train=20, n_test=6, mean_length=20, sd_length=6, max_length=40),
}


def generate_corpus(seed: int = 0, config: SyntheticConfig = SyntheticConfig()) -> Corpus:
    """Draw a synthetic corpus (not yet round-tripped through the pickle layout)."""
    rng = np.random.default_rng(seed)
    prototypes = {m: _prototypes(rng, config.signal_rank, d) for m, d in config.widths.items()}
    bases = {m: np.linalg.qr(rng.standard_normal((d, config.signal_rank)))[0].T for m, d in config.widths.items()}

    n = config.n_train + config.n_test
    lengths = np.clip(np.rint(rng.normal(config.mean_length, config.sd_length, n)), config.min_length,
                      config.max_length).astype(int)
    lengths[rng.integers(n)] = config.max_length  # T is derived from the data: make it IEMOCAP's 110
    ids = [f"synth_train_{i:03d}" for i in range(config.n_train)] + \
          [f"synth_test_{i:03d}" for i in range(config.n_test)]

    dialogues = {}
    for did, length in zip(ids, lengths):
        speakers = _speakers(rng, length, config.switch_prob)
        labels = _labels(rng, speakers, config)
        visible = rng.random(length) >= config.context_only
        features = {}
        for m, width in config.widths.items():
            offsets = {s: config.speaker_offset * rng.standard_normal(width) for s in ("F", "M")}
            signal = config.strength[m] * (prototypes[m][labels] @ bases[m]) * visible[:, None]
            noise = rng.standard_normal((length, width))
            features[m] = (signal + noise + np.stack([offsets[s] for s in speakers])).astype(np.float32)
        counters = {"F": 0, "M": 0}
        utt_ids = []
        for s in speakers:
            utt_ids.append(f"{did}_{s}{counters[s]:03d}")
            counters[s] += 1
        dialogues[did] = Dialogue(
            id=did, utterance_ids=tuple(utt_ids), speakers=tuple(speakers),
            labels=tuple(IEMOCAP6[k] for k in labels),
            sentences=tuple(f"(synthetic utterance {i} by {s})" for i, s in enumerate(speakers)),
            features=features,
        )
    # Sessions as in IEMOCAP: the training dialogues in four consecutive blocks (Ses01-Ses04), the test ones Ses05.
    sessions = {did: f"Ses{1 + (4 * i) // config.n_train:02d}" for i, did in enumerate(ids[:config.n_train])}
    sessions.update({did: "Ses05" for did in ids[config.n_train:]})
    return Corpus(
        dialogues=dialogues,
        splits={"train": tuple(ids[:config.n_train]), "valid": (), "test": tuple(ids[config.n_train:])},
        label_names=IEMOCAP6, synthetic=True, source=source_name("synthetic", seed),
        description="SYNTHETIC data shaped like IEMOCAP; not IEMOCAP results.", sessions=sessions,
    )


def source_name(preset: str, seed: int) -> str:
    """How built-in data name their source: ``'synthetic-small (seed 0)'`` (:func:`parse_source` reads it)."""
    return f"{preset} (seed {seed})"


def parse_source(source: str) -> tuple[str, str] | None:
    """(preset, seed) of a :func:`source_name`, None for any other source (a file)."""
    name, _, seed = str(source).partition(" (seed ")
    if name not in PRESETS:
        return None
    return name, seed.rstrip(")") or "0"


def synthetic_corpus(seed: int = 0, config: SyntheticConfig | str = "synthetic") -> Corpus:
    """The built-in data (a preset name or a config): generated, written in the pickle layout and read back
    through the real loader."""
    name = config if isinstance(config, str) else "synthetic"
    if isinstance(config, str):
        if config not in PRESETS:
            raise ValueError(f"unknown synthetic preset {config!r}; choose one of {sorted(PRESETS)}")
        config = PRESETS[config]
    return corpus_from_bytes(corpus_to_bytes(generate_corpus(seed, config)), source=source_name(name, seed))


def write_synthetic(path, seed: int = 0, *, overwrite: bool = False) -> Path:
    """Write the built-in data to ``path`` as a pickle any tool that reads Poria et al.'s layout can load."""
    return write_corpus(generate_corpus(seed), path, overwrite=overwrite)


def _prototypes(rng, rank: int, width: int) -> np.ndarray:
    """Six class signals in a ``rank``-dim subspace; hap~exc and ang~fru share most of their direction."""
    base = rng.standard_normal((6, rank))
    for a, b in ((0, 4), (3, 5)):  # hap/exc, ang/fru
        base[b] = 0.75 * base[a] + 0.66 * base[b]
    return base / np.linalg.norm(base, axis=1, keepdims=True) * np.sqrt(rank)


def _speakers(rng, length: int, switch_prob: float) -> list[str]:
    current = "F" if rng.random() < 0.5 else "M"
    out = []
    for _ in range(length):
        out.append(current)
        if rng.random() < switch_prob:
            current = "M" if current == "F" else "F"
    return out


def _labels(rng, speakers: list[str], config: SyntheticConfig) -> np.ndarray:
    mood = rng.dirichlet(config.mood_concentration * np.asarray(IEMOCAP6_PRIOR) / min(IEMOCAP6_PRIOR))
    last: dict[str, int] = {}
    out = np.empty(len(speakers), dtype=np.int64)
    for i, s in enumerate(speakers):
        if s in last and rng.random() < config.persistence:
            out[i] = last[s]
        else:
            out[i] = rng.choice(6, p=mood)
        last[s] = out[i]
    return out
