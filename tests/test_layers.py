"""The custom layers of ``model_utils.layers``: padding never leaks into real positions, ``.keras`` round trips,
and the TIM-Net backward stream is aligned with the forward one (flaw B1, docs/upstream.md)."""
from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from model_utils.layers import (
    ApplyMask, ConvexCombination, CrossModalAttention, LogLinearPool, MaskedAttention, MaskedReverse,
    SinusoidalPositionEncoding, TemporalAwareBlock, TimNet, TransformerBlock,
)

T, D = 12, 8
LENGTHS = (12, 9, 4)


def _present(lengths=LENGTHS, t=T):
    return (np.arange(t)[None, :] < np.array(lengths)[:, None]).astype(np.float32)


PRESENT = _present()
REAL = PRESENT.astype(bool)


def _features(seed, width=D, garbage=False, t=T):
    """Zero-padded features; with ``garbage`` the padded steps hold large random values instead. The real steps are
    the same whatever ``t``."""
    present = _present(t=t)[..., None]
    x = np.random.default_rng(seed).normal(size=(len(LENGTHS), T + 4, width)).astype(np.float32)[:, :t]
    fill = 50 * np.random.default_rng(seed + 100).normal(size=x.shape).astype(np.float32) if garbage else 0.0
    return np.where(present > 0, x, fill).astype(np.float32)


def _np(x):
    return ops.convert_to_numpy(x)


# Each case: a layer factory, and how to call it on (x, context, present, training).
CASES = {
    "apply_mask": (lambda: ApplyMask(), lambda layer, x, c, p, tr: layer(x, p)),
    "masked_reverse": (lambda: MaskedReverse(), lambda layer, x, c, p, tr: layer(x, p)),
    "self_attention": (lambda: MaskedAttention(2, 4, 5),
                       lambda layer, x, c, p, tr: layer(x, query_mask=p, training=tr)),
    "cross_modal_attention": (lambda: CrossModalAttention(D, 2),
                              lambda layer, x, c, p, tr: layer(x, c, query_mask=p, context_mask=p, training=tr)),
    "transformer_block": (lambda: TransformerBlock(D, 2, 16, dropout=0.0),
                          lambda layer, x, c, p, tr: layer(x, mask=p, training=tr)),
    "transformer_positional": (lambda: (SinusoidalPositionEncoding(), TransformerBlock(D, 2, 16, dropout=0.0)),
                               lambda layers_, x, c, p, tr: layers_[1](layers_[0](x), mask=p, training=tr)),
    "temporal_aware_block": (lambda: TemporalAwareBlock(6, 2, 2, dropout=0.0),
                             lambda layer, x, c, p, tr: layer(x, mask=p, training=tr)),
    "timnet": (lambda: TimNet(filters=6, num_dilations=3, dropout=0.0),
               lambda layer, x, c, p, tr: layer(x, mask=p, training=tr)),
}


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_padding_content_never_reaches_real_positions(name, training):
    # Training mode matters for BatchNorm (masked batch moments); dropout is 0 in these cases.
    make, call = CASES[name]
    layer = make()
    clean = _np(call(layer, _features(0), _features(1), PRESENT, training))
    dirty = _np(call(layer, _features(0, garbage=True), _features(1, garbage=True), PRESENT, training))
    np.testing.assert_allclose(dirty[REAL], clean[REAL], rtol=1e-5, atol=1e-5)
    assert np.isfinite(dirty[REAL]).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_amount_of_padding_never_matters(name):
    """Same dialogues padded to T and T+4, in training mode: zero padding cannot hide a leak here, e.g. BatchNorm
    batch moments that count padded steps (their conv outputs are content-free, but their number changes)."""
    make, call = CASES[name]
    layer = make()
    short = _np(call(layer, _features(0), _features(1), PRESENT, True))
    long = _np(call(layer, _features(0, t=T + 4), _features(1, t=T + 4), _present(t=T + 4), True))
    np.testing.assert_allclose(long[:, :T][REAL], short[REAL], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_round_trip(name, tmp_path):
    make, call = CASES[name]
    x_in, c_in, p_in = keras.Input((T, D)), keras.Input((T, D)), keras.Input((T,))
    uses_context = name == "cross_modal_attention"
    model = keras.Model([x_in, c_in, p_in] if uses_context else [x_in, p_in], call(make(), x_in, c_in, p_in, None))
    data = [_features(0), _features(1), PRESENT] if uses_context else [_features(0), PRESENT]
    before = _np(model(data, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(_np(loaded(data, training=False)), before)
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]


def test_layer_configs_round_trip():
    for layer in (TransformerBlock(16, 4, 32, dropout=0.2, key_dim=3), CrossModalAttention(16, 4),
                  MaskedAttention(4, 64, 32), TemporalAwareBlock(7, 3, 4, 0.2, "elu"),
                  TimNet(5, 3, 4, 2, 0.2), SinusoidalPositionEncoding(500.0)):
        config = layer.get_config()
        assert type(layer).from_config(config).get_config() == config


def test_masked_reverse_reverses_within_each_length():
    x = np.arange(len(LENGTHS) * T, dtype=np.float32).reshape(len(LENGTHS), T, 1)
    out = _np(MaskedReverse()(x, PRESENT))[..., 0]
    for row, length in enumerate(LENGTHS):
        np.testing.assert_array_equal(out[row, :length], x[row, :length, 0][::-1])
        np.testing.assert_array_equal(out[row, length:], x[row, length:, 0])  # padding stays in place
    np.testing.assert_array_equal(_np(MaskedReverse()(out[..., None], PRESENT)), x)  # its own inverse


def test_attention_outputs_zero_at_padded_queries():
    out = _np(CrossModalAttention(D, 2)(_features(0), _features(1), query_mask=PRESENT, context_mask=PRESENT))
    assert not out[~REAL].any() and np.abs(out[REAL]).sum(-1).all()


def test_convex_combination_is_a_distribution():
    p = [keras.ops.softmax(keras.random.normal((2, T, 4), seed=s)) for s in range(3)]
    layer = ConvexCombination()
    out = _np(layer(p))
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, np.mean([_np(q) for q in p], axis=0), rtol=1e-6)  # starts at the average


def test_log_linear_pool_multiplies_posteriors():
    p = [keras.ops.softmax(keras.random.normal((2, T, 4), seed=s)) for s in range(3)]
    out = _np(LogLinearPool()(p))
    product = np.prod([_np(q) for q in p], axis=0)
    np.testing.assert_allclose(out, product / product.sum(-1, keepdims=True), rtol=1e-5)  # starts at the product
    # agreeing modalities add up, where an average would stay at 0.6
    agree = np.array([[[0.6, 0.2, 0.2]]], np.float32)
    assert _np(LogLinearPool()([agree, agree]))[0, 0, 0] > 0.7
    assert _np(ConvexCombination()([agree, agree]))[0, 0, 0] == pytest.approx(0.6)


def test_log_linear_pool_round_trips(tmp_path):
    inputs = [keras.Input((T, 4)) for _ in range(2)]
    pool = LogLinearPool(name="pool")
    model = keras.Model(inputs, pool(inputs))
    pool.pool_logits.assign([2.0, -1.0])  # a trained state, not the initial one
    data = [_np(keras.ops.softmax(keras.random.normal((3, T, 4), seed=s))) for s in range(2)]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(_np(loaded(data)), _np(model(data)))
    assert LogLinearPool.from_config(pool.get_config()).get_config() == pool.get_config()


# ------------------------------------------------------------------------------------------------ TIM-Net alignment

LEVEL_REACH = (2, 6, 14)  # causal reach of levels 1..3 (dilations 1, 2, 4; two k=2 convs each: 2·Σd)
PROBE_LENGTH = 9


def _dependence(levels_fn, filters):
    """dep[k, t, j]: TimNet level k's output at step t changes when input step j of a length-9 dialogue (padded to
    T=12) changes. One batch: the dialogue, then one copy per j with step j perturbed."""
    dialogue = _features(3)[1]
    batch = np.repeat(dialogue[None], T + 1, axis=0)
    for j in range(T):
        batch[j + 1, j] += 3.0 * np.random.default_rng(j).normal(size=D).astype(np.float32)
    present = np.repeat(PRESENT[1:2], T + 1, axis=0)
    out = _np(levels_fn(batch, present))  # (T + 1, T, levels · filters)
    diff = np.abs(out[1:] - out[:1])  # (j, t, channels)
    levels = diff.reshape(T, T, len(LEVEL_REACH), filters).max(axis=-1) > 1e-6  # (j, t, k)
    return levels.transpose(2, 1, 0)


def test_timnet_backward_stream_is_aligned():
    """Output at real step t depends on exactly the real steps t-reach..t (forward) and t..t+reach (backward),
    clipped to 0..len-1: the backward stream covers t..len-1 at full reach, and padding is never read."""
    filters = 16
    timnet = TimNet(filters=filters, num_dilations=3, dropout=0.0)
    assert PRESENT[1].sum() == PROBE_LENGTH
    dep = _dependence(lambda x, present: timnet(x, mask=present, training=False), filters)
    for k, reach in enumerate(LEVEL_REACH):
        for t in range(PROBE_LENGTH):
            expected = np.zeros(T, bool)
            expected[max(0, t - reach):min(PROBE_LENGTH - 1, t + reach) + 1] = True
            np.testing.assert_array_equal(dep[k, t], expected, err_msg=f"level {k + 1}, step {t}")
    # At full depth (reach 14 > T) every real step sees the whole dialogue and nothing else.
    assert dep[2, :PROBE_LENGTH, :PROBE_LENGTH].all() and not dep[:, :PROBE_LENGTH, PROBE_LENGTH:].any()


def test_upstream_timnet_wiring_reads_padding():
    """Contrast: upstream reversed the padded sequence and never reversed back (forward t + backward T-1-t)."""
    filters = 16
    timnet = TimNet(filters=filters, num_dilations=3, dropout=0.0)

    def upstream_levels(x, present):  # upstream had no mask at all
        forward, backward = timnet.forward_in(x), timnet.backward_in(ops.flip(x, axis=1))
        levels = []
        for fb, bb in zip(timnet.forward_blocks, timnet.backward_blocks):
            forward, backward = fb(forward, training=False), bb(backward, training=False)
            levels.append(forward + backward)
        return ops.concatenate(levels, axis=-1)

    dep = _dependence(upstream_levels, filters)
    # Level 1 at real step t=1: forward sees 0..1, the "backward" stream reads original steps 10..11 (padding) and
    # never 2..3. (Step 11 shows no effect at initialisation only because the block multiplies by its input, whose
    # padded value is the 1×1 conv's zero-initialised bias.)
    level1 = dep[0, 1]
    assert level1[[0, 1, 10]].all() and not level1[2:PROBE_LENGTH].any()
    assert dep[:, :PROBE_LENGTH, PROBE_LENGTH:].any()
