"""Error analysis of a run on its test set: which classes are confused, by dialogue length, by speaker."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..metrics import evaluate
from ..results import RunResult


def top_confusions(result: RunResult, k: int = 6) -> pd.DataFrame:
    """The ``k`` most frequent (true → predicted) mistakes, summed over seeds, with their share of the true class."""
    cm = result.confusion()
    names = result.class_names
    rows = [{"true": names[i], "predicted": names[j], "count": int(cm[i, j]),
             "share_of_true_class": cm[i, j] / max(cm[i].sum(), 1)}
            for i in range(len(names)) for j in range(len(names)) if i != j]
    return pd.DataFrame(rows).sort_values("count", ascending=False).head(k).reset_index(drop=True)


def _test(result: RunResult):
    if result.test is None:
        raise ValueError(f"{result.experiment.name}: this analysis needs the scored dialogues' speakers and lengths, "
                         "which only an in-memory run holds (the RunResult that run_experiment / run_many returned)")
    return result.test


def _by_group(result: RunResult, groups: np.ndarray, order) -> pd.DataFrame:
    """Mean over seeds of accuracy and macro-F1 per value of ``groups`` ((N, T) array over the test set)."""
    test = _test(result)
    rows = []
    for g in order:
        sel = test.mask & (groups == g)
        if not sel.any():
            continue
        scores = [evaluate(test.labels, s.predictions, sel, test.class_names) for s in result.seeds]
        rows.append({"group": g, "utterances": int(sel.sum()),
                     "accuracy": float(np.mean([x["accuracy"] for x in scores])),
                     "macro_f1": float(np.mean([x["macro_f1"] for x in scores]))})
    return pd.DataFrame(rows)


def by_dialogue_length(result: RunResult, bins=(0, 30, 45, 60, 80, 1000)) -> pd.DataFrame:
    """Scores per dialogue-length bucket (utterances per dialogue)."""
    lengths = _test(result).lengths
    labels = [f"{lo + 1}–{hi}" if hi < 1000 else f">{lo}" for lo, hi in zip(bins[:-1], bins[1:])]
    bucket = np.digitize(lengths, bins[1:-1], right=True)
    groups = np.broadcast_to(np.array(labels, dtype=object)[bucket][:, None], result.test.mask.shape)
    return _by_group(result, groups, labels).rename(columns={"group": "dialogue length"})


def by_speaker(result: RunResult) -> pd.DataFrame:
    """Scores per speaker label (in IEMOCAP: F and M, the two actors of a session)."""
    test = _test(result)
    names = np.array(test.speaker_names + ("",), dtype=object)
    groups = names[test.speakers]  # speaker index -1 (padding) maps to ""
    return _by_group(result, groups, test.speaker_names).rename(columns={"group": "speaker"})


def by_position(result: RunResult, bins=(0, 5, 15, 30, 1000)) -> pd.DataFrame:
    """Scores by position of the utterance in its dialogue: context helps later utterances most."""
    t = np.broadcast_to(np.arange(_test(result).max_len)[None, :], result.test.mask.shape)
    labels = [f"{lo + 1}–{hi}" if hi < 1000 else f">{lo}" for lo, hi in zip(bins[:-1], bins[1:])]
    bucket = np.digitize(t, bins[1:-1], right=False)
    return _by_group(result, np.array(labels, dtype=object)[bucket], labels).rename(columns={"group": "position"})
