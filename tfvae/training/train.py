"""A training run in its phases: ``prepare -> fit -> finalize``, each resumable on its own.

    results = train_and_evaluate(config, workdir)

| phase | does | ``run.json`` after it |
| --- | --- | --- |
| `prepare` | strategy, config and workdir checks, data, model, optimisers; writes ``config.json`` only once all of that worked | (unchanged) |
| `fit` | Keras ``fit`` from the last backed-up epoch, with the run's callbacks | ``training``, then ``trained`` and why it stopped |
| `finalize` | best weights, evaluation (`tfvae.results.evaluation`), figures, SavedModel, then ``results.json`` | finished: ``results.json`` exists |

Run the same command again after any interruption: `prepare` finds where the run stands (the
backup's epoch, the phase), `fit` continues from the last finished epoch or is skipped if
training is done, and `finalize` is repeated whole (it writes ``results.json`` last). The
workdir's files are described in `tfvae.training.runstate` and `tfvae.training.checkpoints`; the callbacks are in
`tfvae.training.callbacks`.
"""
import contextlib
import dataclasses
import os
import re
import sys
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfvae import data as data_lib
from tfvae import precision as precision_lib
from tfvae import storage
from tfvae.errors import ConfigError, TrainingDivergedError, WorkerLostError
from tfvae.inference import variance
from tfvae.models import builder
from tfvae.models import labels as labels_lib
from tfvae.models import model as model_lib
from tfvae.results import evaluation, export, figures, plots, structure
from tfvae.training import callbacks as callbacks_lib
from tfvae.training import (checkpoints, distribute, locks, optimizers, runs,
                            runstate, validation)

RESULTS = runstate.RESULTS


def _say(message):
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass
class Run:
    """A run's state as its phases hand it on: the config, where it is written, the data, the
    model (best validation weights once finalized) and, when finished, its results."""

    config: object
    workdir: str
    splits: data_lib.Splits
    model: model_lib.VAE
    strategy: Optional[tf.distribute.Strategy] = None
    epochs_done: int = 0            # epochs the training backup holds
    results: Optional[dict] = None

    @property
    def chief(self) -> bool:
        """Whether this process writes the workdir (all but the non-chief workers of a cluster)."""
        return self.strategy is None or distribute.is_chief(self.strategy)

    @property
    def rundir(self) -> runstate.RunDir:
        return runstate.RunDir(self.workdir)

    @property
    def monitor(self) -> str:
        """The value the best checkpoint and early stopping follow: the validation ELBO, or the
        training ELBO without a validation split."""
        return "val_elbo" if self.splits.num_validation else "elbo"


def train_and_evaluate(config, workdir: str, verbose=None) -> dict:
    """Trains ``config`` into ``workdir`` and returns (and writes) the final results; ``{}`` on
    the non-chief workers of a cluster."""
    return run(config, workdir, verbose).results


def run(config, workdir: str, verbose=None) -> Run:
    """`prepare`, `fit`, `finalize`: the whole run, resumed wherever it stopped. The chief holds
    the workdir's lock throughout (`tfvae.training.locks`: a second run there is refused); a full disk
    raises `DiskFullError` (`tfvae.storage`), the workdir resuming once space is freed."""
    lock = locks.WorkdirLock(workdir)
    try:
        state = prepare(config, workdir, lock)
        fit(state, verbose)
        return finalize(state) if state.chief else dataclasses.replace(state, results={})
    except Exception as err:  # noqa: BLE001 - any writer may meet a full disk
        if storage.is_disk_full(err):
            raise storage.disk_full(err, workdir, _epochs_kept(workdir)) from None
        if isinstance(err, (tf.errors.ResourceExhaustedError, MemoryError)):
            raise builder.out_of_memory(err) from None
        raise
    finally:
        lock.release()


def _epochs_kept(workdir) -> Optional[int]:
    try:
        return checkpoints.resume_epoch(_backup_dir(workdir), warn=lambda m: None)
    except Exception:  # noqa: BLE001 - only for the message
        return None


def build_model(config, splits, strategy=None):
    """The model of ``config`` for ``splits``, compiled with its optimisers (under ``strategy``'s
    scope: variables, optimisers and metrics replicated). A model that needs labelled images
    the splits lack raises `ConfigError`."""
    if labels_lib.LABELS.get(config.model.label).labelled_stream and splits.labelled is None:
        raise ConfigError(f"model.label={config.model.label!r} needs labelled "
                          "training images held in "
                          "memory: data.labels=N (per class) or 'all' on a source with labels, "
                          "and data.in_memory_mb above its size")
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                              train_images=data_lib.first_images(splits, 64),
                              num_classes=splits.num_classes,
                              num_labelled=splits.num_labelled, num_train=splits.num_train)
        default, groups = optimizers.for_training(config.train)
        jit = distribute.jit_compile(strategy, config.train.jit_compile,
                                     config.model.network.name, warn=_say,
                                     precision=config.train.precision)
        model.compile(optimizer=default, group_optimizers=groups, jit_compile=jit,
                      steps_per_execution=min(config.train.steps_per_execution,
                                              splits.steps_per_epoch))
    return model


def prepare(config, workdir: str, lock: Optional[locks.WorkdirLock] = None) -> Run:
    """Checks everything, loads the data and builds the model; then, and only then, writes the
    workdir's ``config.json`` (a refused run leaves nothing behind). The chief takes ``lock``
    before it reads an existing workdir, or once it has made a new one."""
    # First: a multi-worker strategy must be built before any other TensorFlow operation.
    strategy = distribute.build(config.train)
    validation.validate(config)
    rundir = runstate.RunDir(workdir)
    rundir.check_usable()
    chief = strategy is None or distribute.is_chief(strategy)
    if chief and lock is not None and os.path.isdir(workdir):
        lock.acquire()  # before anything is read: another run may be writing it
    changes = rundir.config_changes(config)
    epochs_done = checkpoints.resume_epoch(_backup_dir(workdir), warn=_say)
    keras.utils.set_random_seed(config.seed)
    splits = runs.load_data(config, shard=distribute.input_shard(strategy), warn=_say)
    model = build_model(config, splits, strategy)
    if (config.model.network.name == "cnn" and config.train.precision == "float32"
            and precision_lib.resolve("auto") == "mixed_bfloat16"):
        _say("note: this CPU computes bfloat16 natively: train.precision=auto (mixed bfloat16) "
             "trains this convolutional network 1.2-1.4x faster, within float32's seed-to-seed "
             "spread of test ELBO (docs/RESULTS.md)")
    state = Run(config, workdir, splits, model, strategy, epochs_done)
    if state.chief:
        os.makedirs(workdir, exist_ok=True)
        if lock is not None:
            lock.acquire()
        storage.remove_temporaries(workdir)
        rundir.create(config, changes, epochs_done)
        rundir.truncate_metrics(epochs_done)  # epochs the backup does not hold are redone
    if changes:
        _say(f"resuming at epoch {epochs_done + 1} with changed settings: " + ", ".join(
            f"{k}={new!r} (was {old!r})" for k, (old, new) in changes.items()))
    return state


def fit(state: Run, verbose=None) -> None:
    """Trains from the last backed-up epoch until ``train.epochs`` or early stopping; skipped
    when the run's history says training is done. Raises `TrainingDivergedError` on a NaN loss
    and `WorkerLostError` when a worker of a cluster stopped."""
    config, rundir = state.config, state.rundir
    history = rundir.history(state.epochs_done)  # every worker replays the same history
    best = checkpoints.BestCheckpoint(os.path.join(state.workdir, "checkpoints"), state.monitor)
    best.resume(state.epochs_done, warn=_say, chief=state.chief)
    stopper = None
    if config.train.early_stopping_patience:
        stopper = callbacks_lib.ResumableEarlyStopping(
            history, monitor=state.monitor, mode="max",
            patience=config.train.early_stopping_patience)
    done = (state.epochs_done >= config.train.epochs
            or (stopper is not None and (rundir.state().get("stopped") == "early_stopping"
                                         or stopper.replay().exhausted())))
    if done:
        _say(f"training already finished ({state.epochs_done} epochs); resuming at the final "
             "evaluation")
    else:
        if state.epochs_done:
            _say(f"resuming training at epoch {state.epochs_done + 1} of {config.train.epochs} "
                 f"(backup in {_backup_dir(state.workdir)})")
        if state.chief:
            rundir.update_state(phase="training", stopped=None)
        _fit(state, _callbacks(state, best, stopper), verbose)
    if not state.chief:
        return
    losses = rundir.history().get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        kept = (f"the weights with the best validation ELBO are kept in {best.best.path}"
                if best.best else "no epoch finished cleanly, so no checkpoint was written")
        rundir.update_state(phase="diverged")
        raise TrainingDivergedError(
            f"training diverged: the loss became {losses[-1]} in epoch {len(losses)}; {kept}. "
            "Lower train.learning_rate, or use a KL warm-up (train.kl_warmup_epochs)")
    rundir.update_state(phase="trained", stopped="early_stopping"
                        if len(losses) < config.train.epochs else "completed")


def finalize(state: Run) -> Run:
    """Best weights, evaluation, figures and SavedModel; ``results.json`` written last. The chief
    alone runs it (nothing in it is collective)."""
    config, rundir = state.config, state.rundir
    model = state.model
    final = checkpoints.find_best(os.path.join(state.workdir, "checkpoints"), warn=_say)
    if state.strategy is not None and not distribute.is_default(state.strategy):
        # A plain copy of the model: nothing in this phase is then collective (the other
        # workers have gone), and the SavedModel holds no distributed variables.
        model = build_model(config, state.splits)
        if final is None:
            checkpoints.restore(model, checkpoints.latest_backup(_backup_dir(state.workdir),
                                                                 warn=_say))
    if final is not None:
        checkpoints.restore(model, final.path)
    history = rundir.history()
    e = config.eval
    epoch_times = history.get("epoch_time_s", [])
    rates = [r for r in history.get("train_images_per_s", []) if np.isfinite(r)]
    results = {
        "test": evaluation.evaluate(model, state.splits.test, e.iw_samples, e.iw_examples,
                                    e.iw_batch_size, seed=config.seed),
        "validation": (evaluation.evaluate(model, state.splits.validation, seed=config.seed)
                       if state.splits.num_validation else None),
        "epochs_trained": len(history.get("loss", [])),
        "stopped": rundir.state().get("stopped"),
        "best_epoch": final.epoch + 1 if final else None,
        "best_" + state.monitor: final.value if final else None,
        "train_time_s": float(np.nansum(epoch_times)) if epoch_times else None,
        "train_images_per_s": float(np.median(rates)) if rates else None,
        "num_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
    }
    results |= structure.measure(model, config, seed=config.seed)  # where the data has factors
    if e.plots:
        results["plots"] = [os.path.basename(p)
                            for p in figures.save(model, state.splits, state.workdir, history)]
    export.export(model, os.path.join(state.workdir, "saved_model"), config)
    runstate.write_json(rundir.path(RESULTS), results)  # last: marks the run finished
    return dataclasses.replace(state, model=model, results=results)


# ---------------------------------------------------------------------- inside `fit`
def _backup_dir(workdir):
    return os.path.join(workdir, "backup")


def _callbacks(state: Run, best, stopper):
    """The run's callbacks, in order; the backup last (an epoch counts once all is written)."""
    config, splits, workdir = state.config, state.splits, state.workdir
    out = [callbacks_lib.Throughput(config.data.batch_size, splits.steps_per_epoch)]
    if config.eval.grad_variance_repeats:
        fixed = data_lib.first_images(splits, 100, split="validation")
        names = [n.strip() for n in config.eval.grad_variance_estimators.split(",") if n.strip()]
        others, skipped = variance.comparison_estimators(state.model, config.estimator, names)
        for name, why in skipped.items():
            print(f"note: eval.grad_variance_estimators: {name} skipped: {why}", file=sys.stderr)
        out.append(callbacks_lib.GradientVariance(
            fixed, config.eval.grad_variance_repeats,
            labels=data_lib.first_labels(splits, 100, split="validation"), others=others))
    out += [keras.callbacks.TerminateOnNaN(), best]
    if state.chief:
        out.append(callbacks_lib.MetricsCSVLogger(state.rundir.path(runstate.METRICS),
                                                  append=True))
    # Keras's TensorBoard writes a non-chief worker's summaries to a scratch folder it removes.
    out.append(keras.callbacks.TensorBoard(os.path.join(workdir, "tensorboard"), profile_batch=0))
    if state.chief and plots.is_image(splits.image_shape):
        shown = "validation" if splits.num_validation else "test"
        out.append(callbacks_lib.ImageSummaries(
            os.path.join(workdir, "tensorboard", "images"),
            data_lib.first_images(splits, 8, split=shown),
            labels=data_lib.first_labels(splits, 8, split=shown)))
    if stopper is not None:
        out.append(stopper)
    out.append(checkpoints.Backup(_backup_dir(workdir)))
    return out


def training_data(model, splits):
    """``(train, validation)``: the data sets ``model.fit`` takes for ``splits``. A model
    without labels trains on images alone; a conditional one on (images, labels); a
    semi-supervised one on a batch of every image beside a batch of the labelled ones. Its
    validation batches are what its test step reads (`VAE.steps_read_labels`); validation is
    None without a validation split. ``train`` repeats: a repeated data set keeps one iterator
    for the whole run (Keras otherwise makes a new one each epoch, which costs seconds per
    epoch here: measured ~4 s on 2 cores)."""
    images = (lambda ds: ds) if model.steps_read_labels else (  # noqa: E731
        lambda ds: ds.map(lambda x, y: x))
    train = images(splits.train).repeat()
    if model.labelled_stream:
        train = tf.data.Dataset.zip((splits.train.map(lambda x, y: x).repeat(),
                                     splits.labelled))
    return train, images(splits.validation) if splits.num_validation else None


def _fit(state: Run, callbacks, verbose):
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    splits = state.splits
    train, validation = training_data(state.model, splits)
    try:
        state.model.fit(train, steps_per_epoch=splits.steps_per_epoch,
                        validation_data=validation, epochs=state.config.train.epochs,
                        initial_epoch=state.epochs_done, callbacks=callbacks, verbose=verbose)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as err:
        if not distribute.is_multi_worker(state.strategy):
            raise
        # A collective was aborted: a worker of the cluster stopped. Keras's own remedy is to
        # restart the whole cluster, which resumes from the backup.
        raise WorkerLostError(
            f"a worker of the cluster stopped ({_collective_error(err)}); start every worker "
            "again with the same command: training resumes from the last backed-up epoch in "
            f"{_backup_dir(state.workdir)}") from None


def _collective_error(err) -> str:
    return re.sub(r"\{\{function_node [^}]*\}\}\s*", "", checkpoints.first_line(err))


def open_or_train(config, workdir: str, verbose=2) -> Run:
    """The finished run in ``workdir`` (reopened, its best weights loaded), else trains (or
    resumes) it there first: what every experiment that compares several runs needs."""
    if runs.is_finished(workdir):
        opened = runs.open_run(workdir)
        return Run(opened.config, workdir, opened.splits, opened.model, results=opened.results)
    return run(config, workdir, verbose)
