"""Training and evaluation: ``train_and_evaluate(config, workdir)`` and the ``tfvae-train`` command.

    tfvae-train --config=configs/default.py --workdir=runs/default [--config.train.epochs=5 ...]

The workdir receives:
  config.json            the config the run uses (changes on resume are recorded in run.json)
  run.json               the run's phase (training / trained, and why it stopped), config changes
  metrics.csv            one row per epoch (loss, elbo, distortion, rate, beta, val_*, images/s,
                         epoch time): the run's history, each epoch once
  tensorboard/           TensorBoard summaries (``tensorboard --logdir WORKDIR``)
  checkpoints/best-E*    weights with the best validation ELBO (and its value and epoch inside)
  backup/                the last finished epoch's full state (Keras ``BackupAndRestore``)
  results.json           test (and validation) ELBO, D, R, active units, importance-sampled log p(x)

Run the same command again after any interruption (a kill during an epoch, or during the final
evaluation): it continues where the run stopped; see `tfvae.runstate` and `tfvae.checkpoints`.
  *.png                  samples, reconstructions, traversals, latent space, training curves
  saved_model/           a SavedModel that samples without tfvae installed (`tfvae.export`)
"""
import csv
import dataclasses
import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae import checkpoints, distribute, evaluation, export, optimizers, plots, runstate
from tfvae import model as model_lib
from tfvae import precision as precision_lib
from tfvae.errors import (CheckpointError, ConfigError, DataError, TrainingDivergedError,
                          WorkdirError, WorkerLostError)

RESULTS = runstate.RESULTS


def _say(message):
    print(message, file=sys.stderr, flush=True)


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

    def __init__(self, logdir, images, num_samples=16, seed=0):
        super().__init__()
        self.logdir, self.images = logdir, tf.convert_to_tensor(images[:8])
        self.num_samples, self.seed = num_samples, seed
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.logdir)
        model = self.model
        samples = model.sample(self.num_samples, seed=tf.constant([self.seed, 0]))
        pairs = tf.concat([self.images, model.reconstruct(self.images)], axis=2)  # side by side
        with self._writer.as_default(step=epoch):
            tf.summary.image("samples", samples, max_outputs=self.num_samples)
            tf.summary.image("reconstructions (data | reconstruction)", pairs, max_outputs=8)
        self._writer.flush()


def make_optimizers(train_config):
    """The default optimiser and ``{group: optimizer}`` for groups configured otherwise."""
    t = train_config

    def make(name, rate):  # every optimiser scales the loss under mixed_float16
        return precision_lib.wrap_optimizer(optimizers.make(name, rate), t.precision)

    default = make(t.optimizer, t.learning_rate)
    groups = {}
    for group, settings in t.groups.items():
        if settings.optimizer or settings.learning_rate:
            groups[group] = make(settings.optimizer or t.optimizer,
                                 settings.learning_rate or t.learning_rate)
    return default, groups


class GradientVariance(keras.callbacks.Callback):
    """Logs ``grad_variance``: the variance of the inference-network gradient, summed over its
    parameters (the trace of its covariance), estimated from ``repeats`` independent estimates
    on one fixed batch at the end of each epoch. Control variates are applied with their current
    state but not updated."""

    def __init__(self, images, repeats=16):
        super().__init__()
        self.images = tf.convert_to_tensor(images)
        self.repeats = repeats
        self._fn = None

    def _one(self):
        model = self.model
        variables = model.parameter_groups()["inference"]
        with tf.GradientTape() as tape:
            terms = model.estimator.terms(model, self.images, beta=model.current_beta(),
                                          training=False, update_state=False)
            loss = terms.group_losses.get("inference", terms.loss)
        grads = tape.gradient(loss, variables)
        return tf.concat([tf.reshape(g, [-1]) for g in grads if g is not None], 0)

    def measure(self):
        if self._fn is None:
            self._fn = tf.function(self._one)
        grads = tf.stack([self._fn() for _ in range(self.repeats)])  # [R, P]
        return float(tf.reduce_sum(tf.math.reduce_variance(grads, axis=0)))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["grad_variance"] = self.measure()


def _save_plots(model, splits, workdir, history):
    """Samples, reconstructions, traversals, latent space and curves, as PNG files."""
    paths = []
    paths.append(plots.image_grid(model.sample(64).numpy(), os.path.join(workdir, "samples.png"),
                                  title="Samples: mean of p(x|z), z ~ p(z)"))
    x, labels = next(iter(splits.test))
    x = x[:16]
    paths.append(plots.reconstructions(x.numpy(), model.reconstruct(x).numpy(),
                                       os.path.join(workdir, "reconstructions.png")))
    z, y = evaluation.posterior_means(model, splits.test, max_examples=2000)
    zs, ys = evaluation.encode_dataset(model, splits.test, 2000, sample=True)
    # Traverse the latent dimensions that vary most over the data (the active ones), each over
    # the range its codes occupy (quantiles of the aggregated posterior q(z)).
    dims = np.argsort(-np.var(z, axis=0))[: min(8, model.latent_dim)]
    values = plots.traversal_values(zs, dims)
    base = np.tile(z[:1], (len(dims), values.shape[1], 1)).astype(np.float32)
    for i, d in enumerate(dims):
        base[i, :, d] = values[i]
    images = model.likelihood(tf.constant(base)).mean().numpy()
    paths.append(plots.traversals(images, values, dims, os.path.join(workdir, "traversals.png")))
    if model.latent_dim == 2:
        paths.append(plots.latent_density(
            [{"name": type(model.prior).__name__, "z": zs, "labels": ys,
              "log_density": lambda pts: model.prior.log_prob(pts).numpy()}],
            os.path.join(workdir, "latent_density.png"),
            title="Prior density and aggregated posterior (test)", class_names=splits.class_names))
    else:
        paths.append(plots.latent_scatter(z, os.path.join(workdir, "latent.png"), labels=y,
                                          class_names=splits.class_names))
    paths.append(plots.training_curves(history, os.path.join(workdir, "curves.png")))
    return paths


@dataclasses.dataclass
class Run:
    """A finished run: the trained model (best validation weights), its data and results."""

    model: model_lib.VAE
    splits: data_lib.Splits
    results: dict


def _collective_error(err) -> str:
    import re
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", checkpoints.first_line(err))


def train_and_evaluate(config, workdir: str, verbose=None) -> dict:
    """Trains ``config`` into ``workdir`` and returns (and writes) the final results."""
    return run(config, workdir, verbose).results


class MetricsCSVLogger(keras.callbacks.CSVLogger):
    """Keras's ``CSVLogger`` that, appending to a resumed run's ``metrics.csv``, keeps the
    file's columns: a metric the header has and these logs lack is written as nan, one the
    header lacks is dropped (Keras would write the row in its own column order under the old
    header, shifting every value after the first difference)."""

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f), None)
            if header and header[0] == "epoch":
                self.keys = header[1:]

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is not None:
            logs = {key: logs.get(key, float("nan")) for key in self.keys}
        super().on_epoch_end(epoch, logs)


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
            if self._is_improvement(value, self.best):
                self.best, self.best_epoch, self.wait = value, epoch, 0
        return self

    def exhausted(self) -> bool:
        """True if the history already met the stopping condition."""
        return self.wait >= self.patience and len(self.history.get(self.monitor, [])) > 1

    def on_train_begin(self, logs=None):
        self.replay()


def run(config, workdir: str, verbose=None) -> Run:
    """Trains ``config`` into ``workdir``; returns the model, data and results (see module doc).

    Restartable at any point with the same command: training resumes from the last finished
    epoch, a run killed after training resumes at its final evaluation, and the best weights,
    early stopping and run statistics cover the whole run.
    """
    # First: a multi-worker strategy must be built before any other TensorFlow operation.
    strategy = distribute.build(config.train)
    chief = distribute.is_chief(strategy)  # only the chief writes the workdir
    config_lib.validate(config)
    rundir = runstate.RunDir(workdir)
    rundir.check_usable()
    changes = rundir.config_changes(config)
    backup_dir = os.path.join(workdir, "backup")
    epochs_done = checkpoints.resume_epoch(backup_dir, warn=_say)
    keras.utils.set_random_seed(config.seed)

    splits = data_lib.load(config.data, seed=config.seed, with_labels=True)
    train_ds = splits.train.map(lambda x, y: x)  # the model trains on images alone
    val_ds = splits.validation.map(lambda x, y: x)
    first = next(iter(splits.train))[0][:64]
    with strategy.scope():  # variables, optimisers and metrics are replicated by the strategy
        model = model_lib.build(config, splits.image_shape, splits.steps_per_epoch,
                                train_images=first)
        default_optimizer, group_optimizers = make_optimizers(config.train)
        model.compile(optimizer=default_optimizer, group_optimizers=group_optimizers,
                      steps_per_execution=min(config.train.steps_per_execution,
                                              splits.steps_per_epoch),
                      jit_compile=distribute.jit_compile(strategy, config.train.jit_compile,
                                                         warn=_say))
    # Nothing is written before the config is accepted, the data has loaded and the model is
    # built (which refuses combinations of parts that cannot work together).
    if chief:
        rundir.create(config, changes, epochs_done)
    if changes:
        _say(f"resuming at epoch {epochs_done + 1} with changed settings: " + ", ".join(
            f"{k}={new!r} (was {old!r})" for k, (old, new) in changes.items()))
    history = rundir.history(epochs_done)  # every worker replays the same history
    if chief:
        rundir.truncate_metrics(epochs_done)

    # With data.validation_size = 0 the training ELBO stands in for the validation ELBO.
    monitor = "val_elbo" if splits.num_validation else "elbo"
    val_ds = val_ds if splits.num_validation else None
    best = checkpoints.BestCheckpoint(os.path.join(workdir, "checkpoints"), monitor)
    best.resume(epochs_done, warn=_say, chief=chief)
    throughput = Throughput(config.data.batch_size, splits.steps_per_epoch)
    callbacks = [throughput]
    if config.eval.grad_variance_repeats:
        fixed = next(iter(splits.validation))[0][:100]
        callbacks.append(GradientVariance(fixed, config.eval.grad_variance_repeats))
    callbacks += [keras.callbacks.TerminateOnNaN(), best]
    if chief:
        callbacks.append(MetricsCSVLogger(rundir.path(runstate.METRICS), append=True))
    # Keras's TensorBoard writes a non-chief worker's summaries to a scratch folder it removes.
    callbacks.append(keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"),
                                                 profile_batch=0))
    if chief:
        callbacks.append(ImageSummaries(
            os.path.join(workdir, "tensorboard", "images"),
            next(iter(splits.validation if splits.num_validation else splits.test))[0]))
    stopper = None
    if config.train.early_stopping_patience:
        stopper = ResumableEarlyStopping(history, monitor=monitor, mode="max",
                                         patience=config.train.early_stopping_patience)
        callbacks.append(stopper)
    callbacks.append(checkpoints.Backup(backup_dir))  # last: an epoch counts once all is written
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2

    state = rundir.state()
    done = (epochs_done >= config.train.epochs
            or (stopper is not None and (state.get("stopped") == "early_stopping"
                                         or stopper.replay().exhausted())))
    if done:
        _say(f"training already finished ({epochs_done} epochs); resuming at the final evaluation")
    else:
        if epochs_done:
            _say(f"resuming training at epoch {epochs_done + 1} of {config.train.epochs} "
                 f"(backup in {backup_dir})")
        if chief:
            rundir.update_state(phase="training", stopped=None)
        # A repeated data set keeps one iterator for the whole run: Keras otherwise makes a new
        # one each epoch, which costs seconds per epoch here (measured: ~4 s on 2 cores).
        try:
            model.fit(train_ds.repeat(), steps_per_epoch=splits.steps_per_epoch,
                      validation_data=val_ds, epochs=config.train.epochs,
                      callbacks=callbacks, verbose=verbose)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
                tf.errors.AbortedError, tf.errors.CancelledError) as err:
            if not strategy.extended._in_multi_worker_mode():
                raise
            # A collective was aborted: a worker of the cluster stopped. Keras's own remedy is
            # to restart the whole cluster, which resumes from the backup.
            raise WorkerLostError(
                f"a worker of the cluster stopped ({_collective_error(err)}); start every "
                "worker again with the same command: training resumes from the last backed-up "
                f"epoch in {backup_dir}") from None
    if not chief:  # the chief evaluates, draws and exports alone (none of it is collective)
        return Run(model, splits, {})
    history = rundir.history()
    losses = history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        kept = (f"the weights with the best validation ELBO are kept in {best.best.path}"
                if best.best else "no epoch finished cleanly, so no checkpoint was written")
        rundir.update_state(phase="diverged")
        raise TrainingDivergedError(
            f"training diverged: the loss became {losses[-1]} in epoch {len(losses)}; {kept}. "
            "Lower train.learning_rate, or use a KL warm-up (train.kl_warmup_epochs)")
    stopped = "early_stopping" if len(losses) < config.train.epochs else "completed"
    state = rundir.update_state(phase="trained", stopped=stopped)

    final = checkpoints.find_best(best.directory, warn=_say)
    if not distribute.is_default(strategy):
        # The final phase uses a plain copy of the model: nothing in it is then collective
        # (the other workers have gone), and the SavedModel holds no distributed variables.
        model = model_lib.build(config, splits.image_shape, splits.steps_per_epoch,
                                train_images=first)
        if final is None:
            checkpoints.restore(model, checkpoints.latest_backup(backup_dir, warn=_say))
    if final is not None:
        checkpoints.restore(model, final.path)

    e = config.eval
    epoch_times = history.get("epoch_time_s", [])
    rates = [r for r in history.get("train_images_per_s", []) if np.isfinite(r)]
    results = {
        "test": evaluation.evaluate(model, splits.test, e.iw_samples, e.iw_examples,
                                    e.iw_batch_size),
        "validation": evaluation.elbo(model, splits.validation) if splits.num_validation else None,
        "epochs_trained": len(losses),
        "stopped": state.get("stopped"),
        "best_epoch": final.epoch + 1 if final else None,
        "best_" + monitor: final.value if final else None,
        "train_time_s": float(np.nansum(epoch_times)) if epoch_times else None,
        "train_images_per_s": float(np.median(rates)) if rates else None,
        "num_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
    }
    if config.eval.plots:
        results["plots"] = [os.path.basename(p) for p in _save_plots(model, splits, workdir, history)]
    export.export(model, os.path.join(workdir, "saved_model"), config)
    runstate.write_json(rundir.path(RESULTS), results)  # last: marks the run finished
    return Run(model, splits, results)


def open_run(workdir: str, warn=_say):
    """A workdir's config, data and model with its best weights, finished or not: the best
    checkpoint, else (a run interrupted before its first validation) the training backup.
    Returns ``(config, splits, model, source)``, ``source`` naming the weights used."""
    path = os.path.join(workdir, runstate.CONFIG)
    if not os.path.exists(path):
        raise WorkdirError(f"--workdir={workdir} holds no run (no {runstate.CONFIG}); give the "
                           "workdir of a tfvae-train run")
    config = runstate.read_config(path)
    splits = data_lib.load(config.data, seed=config.seed, with_labels=True)
    first = next(iter(splits.train))[0][:64]
    model = model_lib.build(config, splits.image_shape, splits.steps_per_epoch, train_images=first)
    best = checkpoints.find_best(os.path.join(workdir, "checkpoints"), warn=warn)
    if best is not None:
        checkpoints.restore(model, best.path)
        return config, splits, model, f"best checkpoint (epoch {best.epoch + 1}): {best.path}"
    backup = checkpoints.latest_backup(os.path.join(workdir, "backup"), warn=warn)
    if backup is None:
        raise CheckpointError(f"{workdir} holds no checkpoint yet (no checkpoints/best-*, no "
                              "backup/): train at least one epoch first")
    checkpoints.restore(model, backup)
    return config, splits, model, f"training backup (no best checkpoint yet): {backup}"


def load_run(workdir: str) -> Run:
    """Reopens a finished run: its config, data, model with the best weights, and results."""
    path = os.path.join(workdir, RESULTS)
    if not os.path.exists(path):
        raise ConfigError(f"{workdir} holds no finished run (no {RESULTS})")
    with open(path) as f:
        results = json.load(f)
    _, splits, model, _ = open_run(workdir)
    return Run(model, splits, results)


def _format(results):
    t = results["test"]
    line = (f"test: ELBO {t['elbo']:.2f}  D {t['distortion']:.2f}  R {t['rate']:.2f}  "
            f"active units {t['active_units']}")
    if "log_likelihood" in t:
        line += (f"  log p(x) >= {t['log_likelihood']:.2f} (k={t['iw_samples']}, "
                 f"n={t['iw_examples']}; {t['bits_per_dim']:.4f} bits/dim)")
    return line


def main(argv):
    from absl import flags, logging
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TF's INFO chatter (checkpoint sharding, ...)
    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {' '.join(argv[1:])}")
    cfg, workdir = flags.FLAGS.config, flags.FLAGS.workdir
    try:
        results = train_and_evaluate(cfg, workdir)
    except WorkerLostError as err:
        # After an aborted collective TensorFlow's teardown can itself abort (seen: "double
        # free or corruption" while collecting garbage), which would replace exit status 1
        # with a signal: leave without it, everything the run keeps is already on disk.
        print(f"tfvae-train: error: {err}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(1)
    except (ConfigError, DataError, TrainingDivergedError, CheckpointError, WorkdirError) as err:
        raise SystemExit(f"tfvae-train: error: {err}") from None
    if not results:  # a non-chief worker of a multi-worker run
        print("training finished; the chief worker evaluates and writes the results")
        return
    print(_format(results))
    print(f"results: {os.path.join(workdir, RESULTS)}")


def define_flags():
    from absl import flags
    from ml_collections import config_flags
    if "config" in flags.FLAGS:
        return
    config_flags.DEFINE_config_file(
        "config", os.path.join(os.path.dirname(config_lib.__file__), "config.py"),
        "Path to a config file (configs/*.py) returning an ml_collections.ConfigDict.",
        lock_config=True)
    flags.DEFINE_string("workdir", "runs/default", "Directory for checkpoints, logs and results.")


def run_main():
    """Console entry point ``tfvae-train`` (`tfvae.cli.train_main`)."""
    from tfvae.cli import train_main
    train_main()


if __name__ == "__main__":
    run_main()
