"""Every architecture in ``model_utils.architectures``: probabilities per utterance, padding invariance, ``.keras``
round trip, and the upstream parameter counts of docs/upstream.md §2 (reconstructed there with a 5-way head)."""
from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
from keras import ops

from data_utils.dataset import load_dataset
from model_utils.architectures import ARCHITECTURES, build_model, default_hparams, required_inputs

T, NUM_CLASSES = 16, 4
LENGTHS = (16, 11, 5)
DIMS = {"text": 6, "audio": 8, "visual": 10}
ALL = ("audio", "visual", "text")  # upstream's concatenation order


def _modalities(arch):
    return ARCHITECTURES[arch].fixed_modalities or ALL


def _present(t=T):
    return (np.arange(t)[None, :] < np.array(LENGTHS)[:, None]).astype(np.float32)


REAL = _present().astype(bool)


def _inputs(arch, *, t=T, garbage=False):
    """A batch of 3 dialogues (lengths 16, 11, 5) padded to ``t`` with zeros, or with large random garbage.

    The real utterances are the same whatever ``t`` and ``garbage``.
    """
    present = _present(t)
    data = {}
    for i, m in enumerate(_modalities(arch)):
        x = np.random.default_rng(i).normal(size=(len(LENGTHS), T + 8, DIMS[m])).astype(np.float32)[:, :t]
        fill = 30 * np.random.default_rng(100 + i).normal(size=x.shape).astype(np.float32)
        data[m] = np.where(present[..., None] > 0, x, fill if garbage else 0.0).astype(np.float32)
    data["present"] = present
    if ARCHITECTURES[arch].uses_speaker:  # two parties taking turns; garbage ids at padding
        turns = np.broadcast_to(np.arange(t) % 2, present.shape)
        junk = np.random.default_rng(7).integers(0, 2, size=present.shape)
        data["party"] = np.where(present > 0, turns, junk if garbage else 0).astype(np.int32)
    return data


@functools.lru_cache(maxsize=None)
def _model(arch, t=T):
    keras.utils.set_random_seed(0)
    return build_model(arch, dims=DIMS, modalities=_modalities(arch), num_classes=NUM_CLASSES, max_len=t)


def _predict(model, data):
    return ops.convert_to_numpy(model(data, training=False))


@functools.lru_cache(maxsize=None)
def _clean_output(arch):
    return _model(arch)(_inputs(arch), training=False)


def _clean_prediction(arch):
    return ops.convert_to_numpy(_clean_output(arch))


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_output_is_a_distribution_over_real_classes(arch):
    model = _model(arch)
    assert set(model.input) == set(required_inputs(arch, _modalities(arch)))
    # No Keras mask, symbolically or at run time: Keras would otherwise renormalise the loss by it (cf. flaw B9).
    assert getattr(model.outputs[0], "_keras_mask", None) is None
    assert getattr(_clean_output(arch), "_keras_mask", None) is None
    out = _clean_prediction(arch)
    assert out.shape == (len(LENGTHS), T, NUM_CLASSES)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    assert (out >= 0).all()


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_padding_content_never_reaches_real_positions(arch):
    clean = _clean_prediction(arch)
    dirty = _predict(_model(arch), _inputs(arch, garbage=True))
    np.testing.assert_allclose(dirty[REAL], clean[REAL], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_amount_of_padding_never_matters(arch):
    """Stronger than the garbage test (inputs are zeroed on entry): the same weights on the same dialogues padded to
    T+4 give the same outputs at real steps, so no layer attends to, convolves over or normalises with padding."""
    short, long = _model(arch), _model(arch, T + 4)
    long.set_weights(short.get_weights())
    out_short = _clean_prediction(arch)
    out_long = _predict(long, _inputs(arch, t=T + 4))
    np.testing.assert_allclose(out_long[:, :T][REAL], out_short[REAL], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_keras_round_trip(arch, tmp_path):
    model = _model(arch)
    data = _inputs(arch)
    _clean_prediction(arch)  # before saving
    path = tmp_path / f"{arch}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(_predict(loaded, data), _clean_prediction(arch))


def test_decision_fusion_by_product_is_padding_invariant_and_round_trips(tmp_path):
    def model(t):
        keras.utils.set_random_seed(0)
        return build_model("late_fusion_decision", dims=DIMS, modalities=ALL, num_classes=NUM_CLASSES, max_len=t,
                           pooling="log")

    short, long = model(T), model(T + 4)
    long.set_weights(short.get_weights())
    clean = _predict(short, _inputs("late_fusion_decision"))
    np.testing.assert_allclose(clean.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(_predict(short, _inputs("late_fusion_decision", garbage=True))[REAL], clean[REAL],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_predict(long, _inputs("late_fusion_decision", t=T + 4))[:, :T][REAL], clean[REAL],
                               rtol=1e-5, atol=1e-6)
    short.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(_predict(keras.models.load_model(tmp_path / "m.keras"),
                                           _inputs("late_fusion_decision")), clean)
    with pytest.raises(ValueError, match="pooling must be 'linear' or 'log', got 'max'"):
        build_model("late_fusion_decision", dims=DIMS, modalities=ALL, num_classes=NUM_CLASSES, max_len=T,
                    pooling="max")


def test_trains_one_step_with_the_utterance_mask_as_sample_weight():
    """The training contract in graph mode: outputs carry no Keras mask, the loss is weighted by ERCDataset.mask.
    TIM-Net (small) exercises the custom pieces that only run in training: masked BatchNorm moments, and gradients
    through the masked reversal. (Tracing the full models takes 1-23 s each on 2 cores, too slow to do them all.)"""
    keras.utils.set_random_seed(0)
    model = build_model("timnet", dims=DIMS, modalities=ALL, num_classes=NUM_CLASSES, max_len=T, filters=8,
                        num_dilations=1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
    labels = np.where(REAL, np.arange(T)[None, :] % NUM_CLASSES, 0)
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(_inputs("timnet"), labels, sample_weight=REAL.astype(np.float32), batch_size=3, epochs=1,
                        verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


# docs/upstream.md §2 reconstructions with num_classes=5 at the upstream widths (text 100, audio 100, visual 512).
UPSTREAM_DIMS = {"text": 100, "audio": 100, "visual": 512}
UPSTREAM_COUNTS = [
    ("rnn", ("text",), 295_145), ("rnn", ("visual",), 928_389), ("rnn", ALL, 1_235_789),
    ("cnn", ("text",), 128_389), ("cnn", ("visual",), 444_805), ("cnn", ALL, 598_405),
    ("transformer", ("text",), 905_601), ("transformer", ("visual",), 6_307_333), ("transformer", ALL, 9_908_733),
    ("early_fusion", ALL, 406_405), ("early_fusion", ("text",), 93_061), ("early_fusion", ("visual",), 304_005),
    ("late_fusion_repr", ALL, 489_349),
    ("text_bilstm", ("text",), 191_877),
    ("multimodal_seed", ("text", "audio", "visual"), 2_142_981),
    ("timnet", ALL, 161_105), ("timnet", ("text",), 113_369), ("timnet", ("visual",), 145_505),
    # Ours, no upstream count: late_fusion_decision = late_fusion_repr's 3 BiLSTMs (464,384) + per modality
    # Dense(128→64) + Dense(64→5) (8,581 each) + 3 fusion logits. multimodal_seed_tfaudio = multimodal_seed minus
    # the conv audio branch (168,320) plus 2 TransformerBlocks on 100-d (2 × 452,548) and Dense(100→128) (12,928).
    ("late_fusion_decision", ALL, 464_384 + 3 * 8_581 + 3),
    ("multimodal_seed_tfaudio", ("text", "audio", "visual"), 2_142_981 - 168_320 + 2 * 452_548 + 12_928),
    # multimodal (d 96): per modality LayerNorm + Dense(width→96) (70,064 in all),
    # utterance fusion Dense(288→96) 27,744, two cross-attentions 4 × (96·96 + 96) each, fusion LayerNorm 192,
    # speaker embedding 2 × 96, BiGRU(64) 2 × 3 × (96·64 + 64·64 + 2·64) = 62,208, Dense(128→96) 12,384,
    # context LayerNorm 192, Dense(96→5) 485.
    ("multimodal", ("text", "audio", "visual"),
     (2 * (2 * 100 + 100 * 96 + 96) + (2 * 512 + 512 * 96 + 96)) + 27_744 + 2 * 4 * (96 * 96 + 96) + 192 + 192
     + 62_208 + 12_384 + 192 + 485),
    # text_context (d 256, units 128, 2 speakers): LayerNorm(100) 200, Dense(100→256) 25,856, speaker embedding
    # 2 × 256, dialogue BiLSTM(128) and the shared per-speaker BiLSTM(128) 2 × 4 × (256·128 + 128·128 + 128) each,
    # Dense(768→5) 3,845 on [utterance, dialogue context, speaker context].
    ("text_context", ("text",), 200 + 25_856 + 512 + 2 * (2 * 4 * (256 * 128 + 128 * 128 + 128)) + 3_845),
]


@pytest.mark.parametrize("arch,modalities,expected", UPSTREAM_COUNTS,
                         ids=[f"{a}-{'+'.join(m)}" for a, m, _ in UPSTREAM_COUNTS])
def test_parameter_counts_match_upstream(arch, modalities, expected):
    # Identical to docs/upstream.md: the explicit `present` mask, zeroing and masked attention add no weights, and
    # BatchNorm's moving statistics are counted as upstream (model.summary totals).
    model = build_model(arch, dims=UPSTREAM_DIMS, modalities=modalities, num_classes=5, max_len=8)
    assert model.count_params() == expected


def test_every_architecture_has_a_count():
    assert {a for a, _, _ in UPSTREAM_COUNTS} == set(ARCHITECTURES)


def test_defaults_are_the_upstream_hyperparameters():
    assert default_hparams("timnet") == dict(filters=39, kernel_size=2, num_dilations=8, num_stacks=1, dropout=0.1,
                                             activation="relu", level_dim=6)
    assert default_hparams("transformer") == dict(num_blocks=2, num_heads=4, dff=2048, dropout=0.1, key_dim=None,
                                                  positional=False)
    assert default_hparams("multimodal_seed")["d_model"] == 128 and default_hparams("multimodal_seed")["num_heads"] == 8


def test_hparams_override_and_positional_option():
    keras.utils.set_random_seed(0)
    plain = build_model("transformer", dims=DIMS, modalities=("text",), num_classes=3, max_len=T, dff=16)
    keras.utils.set_random_seed(0)
    positional = build_model("transformer", dims=DIMS, modalities=("text",), num_classes=3, max_len=T, dff=16,
                             positional=True)
    assert plain.count_params() == positional.count_params()
    positional.set_weights(plain.get_weights())
    data = {"text": _inputs("transformer")["text"], "present": _present()}
    assert not np.allclose(_predict(plain, data), _predict(positional, data))  # positions now matter


def test_inputs_and_errors():
    assert required_inputs("rnn", ("text",)) == ("text", "present")
    assert required_inputs("multimodal_seed", ("audio", "visual", "text")) == ("audio", "visual", "text", "present")
    with pytest.raises(ValueError, match="unknown architecture"):
        required_inputs("nope", ("text",))
    with pytest.raises(ValueError, match="exactly the modalities"):
        build_model("text_bilstm", dims=DIMS, modalities=("audio",), num_classes=4, max_len=T)
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        build_model("rnn", dims=DIMS, modalities=("text",), num_classes=4, max_len=T, unitz=3)


def test_runs_on_erc_dataset_inputs():
    """The input contract: ERCDataset.model_inputs, filtered by required_inputs, feeds the model."""
    ds = load_dataset().subset("test")
    arch = "cnn"
    names = required_inputs(arch, ds.modalities)
    model = build_model(arch, dims=ds.dims, modalities=ds.modalities, num_classes=ds.num_classes, max_len=ds.max_len)
    inputs = {k: v[:2] for k, v in ds.model_inputs().items() if k in names}
    out = _predict(model, inputs)
    assert out.shape == (2, ds.max_len, ds.num_classes)
