"""Batches of whole dialogues for training and prediction: similar lengths together, each batch cut to its own
longest dialogue (exact, because every architecture's outputs at real utterances ignore the padding after them),
fed to Keras through a ``tf.data`` pipeline (:meth:`LengthBatches.as_dataset`)."""
from __future__ import annotations

import itertools

import keras
import numpy as np

__all__ = ["LengthBatches", "trims"]


class LengthBatches:
    """Batches of dialogues of similar length, each cut to its own longest dialogue.

    Every architecture's outputs at real positions are independent of how much padding follows (the padding
    invariance the tests check), so trimming is exact, and it halves the work on IEMOCAP-like data (mean length
    49 of 110). With ``shuffle`` the dialogues are sorted by length plus noise, cut into batches, and the batch
    order is shuffled, anew every epoch, from numpy's seeded global generator. ``fit`` reads them through
    :meth:`as_dataset`; ``predict`` indexes them directly.
    """

    def __init__(self, inputs: dict, lengths: np.ndarray, batch_size: int, *, targets=None, sample_weight=None,
                 shuffle: bool = False, trim: bool = True, multiple: int = 8):
        self.inputs, self.targets, self.sample_weight = inputs, targets, sample_weight
        self.lengths, self.batch_size, self.shuffle, self.multiple = lengths, batch_size, shuffle, multiple
        self.max_len = int(next(iter(inputs.values())).shape[1])
        self.trim = trim
        self.batches = self._make_batches()

    def _make_batches(self) -> list[np.ndarray]:
        noise = np.random.uniform(0, 8, len(self.lengths)) if self.shuffle else np.zeros(len(self.lengths))
        order = np.argsort(self.lengths + noise, kind="stable")
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in np.random.permutation(len(batches))]
        return batches

    def __len__(self) -> int:
        return len(self.batches)

    def width(self, rows: np.ndarray) -> int:
        if not self.trim:
            return self.max_len
        longest = int(self.lengths[rows].max())
        return min(self.max_len, -(-longest // self.multiple) * self.multiple)

    def __getitem__(self, i: int):
        rows = self.batches[i]
        t = self.width(rows)
        x = {k: v[rows, :t] for k, v in self.inputs.items()}
        if self.targets is None:
            return (x,)
        return x, self.targets[rows, :t], self.sample_weight[rows, :t]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.batches = self._make_batches()

    def as_dataset(self):
        """An endless ``tf.data`` pipeline over these batches whose signature leaves batch size and length open.

        It yields ``self[0]``, ``self[1]``, … and then starts the next pass with :meth:`on_epoch_end` (a new order
        when shuffling). Give ``fit`` ``steps_per_epoch=len(self)``: Keras then keeps one iterator for the whole
        run, where a finite dataset costs a new iterator, and sometimes 0.4 s, at the start of every epoch.
        Given a ``keras.utils.PyDataset`` instead, Keras would infer the signature from its first two batches; when
        both have the same trimmed length, a later batch of another length fails.
        """
        import tensorflow as tf  # the suite runs on Keras' TensorFlow backend

        def spec(a: np.ndarray):
            return tf.TensorSpec((None, None) + a.shape[2:], tf.as_dtype(a.dtype))

        def generate():
            for pass_ in itertools.count():
                if pass_:
                    self.on_epoch_end()
                for i in range(len(self)):
                    yield self[i]

        dataset = tf.data.Dataset.from_generator(generate, output_signature=keras.tree.map_structure(spec, self[0]))
        return dataset.with_options(_plain_pipeline()).apply(
            tf.data.experimental.assert_cardinality(tf.data.INFINITE_CARDINALITY))


def _plain_pipeline():
    """``tf.data`` options without autotuning and without the prefetch tf.data injects by default.

    A batch is a few numpy slices, so prefetching gains nothing; but with the injected prefetch, ending ``fit``
    waited for the background thread that was already running the generator for the next batch: 0.4–0.9 s per run
    whenever two processes shared the two cores, and up to a minute for one seed of ``make reproduce`` (measured
    2026-12-01; it showed as "the rest of fit" in ``reports/profile.md``). The batches, and so the numbers, are the
    same either way.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.inject_prefetch = False
    return options


def trims(model: keras.Model) -> bool:
    """Whether ``model`` takes any sequence length (built with ``max_len=None``), so batches can be trimmed."""
    return all(t.shape[1] is None for t in keras.tree.flatten(model.inputs))
