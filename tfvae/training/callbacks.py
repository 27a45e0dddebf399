"""Keras callbacks of a training run (`tfvae.training.train` puts them together; checkpoints and the
training backup are `tfvae.training.checkpoints`'):

- `Throughput`: ``train_images_per_s`` and ``epoch_time_s`` in the epoch logs;
- `ImageSummaries`: per-epoch TensorBoard images (samples from fixed draws, reconstructions);
- `GradientVariance`: ``grad_variance``, the inference gradient's variance on a fixed batch;
- `MetricsCSVLogger`: ``metrics.csv``, keeping a resumed file's columns;
- `ResumableEarlyStopping`: early stopping whose patience continues across restarts.
"""
import csv
import os
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfvae import storage
from tfvae.inference import variance


class Throughput(keras.callbacks.Callback):
    """Adds ``train_images_per_s`` (training steps only, validation excluded) and
    ``epoch_time_s`` (the whole epoch, validation included) to the epoch logs."""

    def __init__(self, batch_size, steps_per_epoch):
        super().__init__()
        self.images = batch_size * steps_per_epoch
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_time = time.perf_counter(), None

    def on_test_begin(self, logs=None):
        self._train_time = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        seconds = self._train_time or (time.perf_counter() - self._start)
        self.rates.append(self.images / seconds)
        if logs is not None:
            logs["train_images_per_s"] = self.rates[-1]
            logs["epoch_time_s"] = time.perf_counter() - self._start


class ImageSummaries(keras.callbacks.Callback):
    """Per-epoch TensorBoard images (``tensorboard/images``): samples from fixed prior draws
    (the same z every epoch, so the images show training's progress, not new noise) and
    reconstructions of fixed validation images beside them."""

    def __init__(self, logdir, images, num_samples=16, seed=0, labels=None):
        super().__init__()
        self.logdir, self.images = logdir, tf.convert_to_tensor(images[:8])
        self.labels = None if labels is None else tf.convert_to_tensor(labels[:8])
        self.num_samples, self.seed = num_samples, seed
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.logdir)
        model = self.model
        samples = model.sample(self.num_samples, seed=tf.constant([self.seed, 0]))
        recon = model.reconstruct(self.images, self.labels)
        pairs = tf.concat([self.images, recon], axis=2)  # side by side
        with self._writer.as_default(step=epoch):
            tf.summary.image("samples", samples, max_outputs=self.num_samples)
            tf.summary.image("reconstructions (data | reconstruction)", pairs, max_outputs=8)
        self._writer.flush()


class GradientVariance(keras.callbacks.Callback):
    """Logs ``grad_variance``: the variance of the inference-network gradient, summed over its
    parameters (the trace of its covariance), estimated from ``repeats`` independent estimates
    on one fixed batch at the end of each epoch; and ``grad_variance_<name>`` for each of the
    ``others`` (``{name: (estimator, model view)}``, `variance.comparison_estimators`) at the
    same parameters and batch. Control variates are applied with their current state but not
    updated (`tfvae.inference.variance`)."""

    def __init__(self, images, repeats=16, labels=None, others=None):
        super().__init__()
        self.images = tf.convert_to_tensor(images)
        self.labels = None if labels is None else tf.convert_to_tensor(labels)
        self.repeats = repeats
        self.others = dict(others or {})
        self._fns = None

    def measure(self) -> dict:
        if self._fns is None:
            self._fns = {"grad_variance": variance.estimate_fn(self.model, self.images,
                                                               labels=self.labels)}
            self._fns.update({f"grad_variance_{name}": variance.estimate_fn(
                self.model, self.images, est, labels=self.labels, view=view)
                for name, (est, view) in self.others.items()})
        return {key: variance.summarize(np.stack([fn().numpy() for _ in range(self.repeats)]))
                ["variance"] for key, fn in self._fns.items()}

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.measure())


class MetricsCSVLogger(keras.callbacks.Callback):
    """``metrics.csv``: one row per epoch, ``epoch`` then the metrics in sorted order (as Keras's
    ``CSVLogger``). Each row is added by writing the whole file anew and renaming it over the
    old one (`tfvae.storage.atomic_file`; the file is a few kB): a kill or a full disk leaves
    the rows before, never half a row. A resumed run's file keeps its columns: a metric the
    header has and these logs lack is written as nan, one the header lacks is dropped (Keras
    would write the row in its own column order under the old header)."""

    def __init__(self, filename: str, append: bool = True):
        super().__init__()
        self.filename, self.append = filename, append
        self.keys = None

    def on_train_begin(self, logs=None):
        self.keys = None
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), None)
            if header and header[0] == "epoch":
                self.keys = header[1:]
        elif os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        old = ""
        if self.keys is not None and os.path.exists(self.filename):
            with open(self.filename, newline="", encoding="utf-8") as f:
                old = f.read()
            if old and not old.endswith("\n"):  # a row cut short (before rows were atomic)
                old = old[: old.rfind("\n") + 1]
        if self.keys is None:
            self.keys = sorted(logs)
        with storage.atomic_file(self.filename, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            if not old:
                writer.writerow(["epoch", *self.keys])
            f.write(old)
            writer.writerow([epoch, *(_cell(logs.get(k, float("nan"))) for k in self.keys)])


def _cell(value):
    if isinstance(value, (np.ndarray, tf.Tensor)) or hasattr(value, "numpy"):
        value = np.asarray(value)
        return float(value) if value.ndim == 0 else str(value.tolist())
    return value


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras's ``EarlyStopping`` whose patience counter and best value continue from the run's
    history (``metrics.csv``) after a restart, instead of starting afresh."""

    def __init__(self, history, **kwargs):
        super().__init__(**kwargs)
        self.history = history

    def replay(self):
        """Sets ``wait``, ``best`` and ``best_epoch`` as if every past epoch had been seen."""
        super().on_train_begin()
        for epoch, value in enumerate(self.history.get(self.monitor, [])):
            if value is None or not np.isfinite(value) or epoch < self.start_from_epoch:
                continue
            self.wait += 1
            if self.monitor_op(value - self.min_delta, self.best):  # Keras's improvement test
                self.best, self.best_epoch, self.wait = value, epoch, 0
        return self

    def exhausted(self) -> bool:
        """True if the history already met the stopping condition."""
        return self.wait >= self.patience and len(self.history.get(self.monitor, [])) > 1

    def on_train_begin(self, logs=None):
        self.replay()
