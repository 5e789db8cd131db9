"""What a trained model's cross-modal attention looks at: the text→audio and text→visual weights of one dialogue.

The weights come from the trained layers themselves (:meth:`model_utils.layers.MaskedAttention.attention_scores`,
Keras' ``return_attention_scores``): the saved model computes the layer's inputs for the dialogue, and the layer
gives its softmax weights, utterance by utterance, averaged over its heads, with the padding cut off. Plot them with
:func:`model_utils.report.plots.plot_attention`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .trained import TrainedRun, load_run

CROSS_ATTENTION = ("text_to_audio", "text_to_visual")  # the layer names of multimodal and multimodal-seed


def cross_attention(run: str | Path | TrainedRun, dialogue_id: str | None = None, *, seed: int | None = None,
                    layers: Sequence[str] = CROSS_ATTENTION, data=None) -> dict:
    """The attention weights of ``layers`` (cross-modal attention layers of the model, by name) for one scored
    dialogue of ``run`` (default: its first), from seed ``seed``'s model (default: the run's first seed; the fold
    that held the dialogue out, for a cross-validated run); ``data`` as :func:`model_utils.robustness.run_folds`
    takes it.

    Returns ``{"experiment", "data", "seed", "dialogue_id", "speakers", "labels", "layers": {name: (L, L) array}}``:
    rows are the querying (text) utterances, columns the attended ones, L the dialogue's length; each row sums to 1.
    ``ValueError`` when the model has no such layer or the dialogue is not in the run's scored set."""
    from .layers import MaskedAttention
    from .robustness import run_folds
    from .run.inputs import fold_name

    run = run if isinstance(run, TrainedRun) else load_run(run)
    seed = run.seeds[0] if seed is None else seed
    folds, scored = run_folds(run, data)
    dialogue_id = scored.dialogue_ids[0] if dialogue_id is None else dialogue_id
    found = [(session, test) for session, test in folds if dialogue_id in test.dialogue_ids]
    if not found:
        raise ValueError(f"{dialogue_id!r} is not a scored dialogue of {run.folder}")
    session, test = found[0]
    one = test.subset([dialogue_id])
    length = int(one.lengths[0])
    model = run.model(seed, fold_name(session))
    weights = {}
    for name in layers:
        layer = _layer(model, name, MaskedAttention, run)
        scores = layer.attention_scores(*_layer_inputs(model, layer, one, run.inputs.modalities))
        weights[name] = np.asarray(scores)[0].mean(axis=0)[:length, :length]
    classes = np.array(one.class_names + ("",), dtype=object)
    return {"experiment": run.experiment.name, "data": dict(run.inputs.data), "seed": seed,
            "dialogue_id": dialogue_id, "speakers": [one.speaker_names[s] for s in one.speakers[0, :length]],
            "labels": list(classes[one.labels[0, :length]]), "layers": weights}


def _layer(model, name: str, kind, run: TrainedRun):
    try:
        layer = model.get_layer(name)
    except ValueError:
        layer = None
    if not isinstance(layer, kind):
        attention = [layer.name for layer in model.layers if isinstance(layer, kind)]
        raise ValueError(f"{run.experiment.name} has no attention layer {name!r} (its attention layers: "
                         f"{', '.join(attention) or 'none'})")
    return layer


def _layer_inputs(model, layer, ds, modalities) -> tuple:
    """The (query, context, query_mask, context_mask) the saved model feeds ``layer`` for ``ds``, as arrays."""
    import keras

    from .training import model_inputs

    node = layer._inbound_nodes[0]  # where the functional model calls the layer
    args, kwargs = list(node.arguments.args), dict(node.arguments.kwargs)
    names = ("query", "context", "query_mask", "context_mask")
    tensors = [args[i] if i < len(args) else kwargs.get(n) for i, n in enumerate(names)]
    given = [t for t in tensors if t is not None]
    values = keras.Model(model.inputs, given)(model_inputs(model, ds, modalities), training=False)
    values = iter(values if isinstance(values, (list, tuple)) else [values])
    return tuple(None if t is None else next(values) for t in tensors)
