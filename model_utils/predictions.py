"""Per-utterance predictions as a table: the one format of a run's ``predictions.csv`` files and of ``mser
predict``'s output. No deep-learning backend is imported here.

One row per utterance, in the dataset's order (dialogue by dialogue, turn by turn): ``dialogue_id``,
``utterance_id``, ``turn`` (0-based position in the dialogue), ``speaker``, then ``text`` and ``label`` where asked
for (``label``: the utterance's class under the scheme, '' where it is not scored), ``predicted`` (the class with
the highest posterior) and one column ``p_<class>`` per class (the posteriors, summing to 1).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_utils.dataset import ERCDataset

from .metrics import predict_classes


def probability_columns(class_names) -> list[str]:
    """``p_<class>`` for every class, the columns that hold the posteriors."""
    return [f"p_{c}" for c in class_names]


def utterance_table(ds: ERCDataset, probabilities: np.ndarray, rows: np.ndarray | None = None, *,
                    text: bool = False, label: bool = False) -> pd.DataFrame:
    """The rows of ``ds`` where ``rows`` ((N, T) bool; default: every real utterance, ``ds.present``) with the
    posteriors ``probabilities`` ((N, T, C), C = ``ds.num_classes``) and their argmax; ``text`` and ``label`` add
    those columns (see the module docstring)."""
    rows = ds.present if rows is None else np.asarray(rows, bool) & ds.present
    if probabilities.shape != ds.labels.shape + (ds.num_classes,):
        raise ValueError(f"posteriors of shape {probabilities.shape} do not fit {ds.source}'s "
                         f"{ds.labels.shape + (ds.num_classes,)}")
    d, t = np.nonzero(rows)
    names = np.array(ds.speaker_names + ("",), dtype=object)
    classes = np.array(ds.class_names, dtype=object)
    p = probabilities[d, t]
    table = {"dialogue_id": [ds.dialogue_ids[i] for i in d],
             "utterance_id": [ds.utterance_ids[i][j] for i, j in zip(d, t)],
             "turn": t.astype(int), "speaker": names[ds.speakers[d, t]]}
    if text:
        table["text"] = [ds.sentences[i][j] if j < len(ds.sentences[i]) else "" for i, j in zip(d, t)]
    if label:
        table["label"] = np.where(ds.mask[d, t], classes[np.maximum(ds.labels[d, t], 0)], "")
    table["predicted"] = classes[predict_classes(p)] if len(p) else np.array([], dtype=object)
    frame = pd.DataFrame(table)
    for column, values in zip(probability_columns(ds.class_names), p.T if len(p) else [[]] * ds.num_classes):
        frame[column] = np.asarray(values, np.float64)
    return frame
