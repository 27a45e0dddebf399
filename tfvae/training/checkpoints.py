"""Checkpoints that survive a restart: the best weights and the training backup of a workdir.

Two folders, each with the last two good checkpoints so that a corrupt one falls back to the one
before it:

- ``checkpoints/best-EEEEE``: the model with the best monitored value (validation ELBO) so far,
  written by `BestCheckpoint`. The value and its epoch are variables *inside* the checkpoint, so
  the record of "best so far" can never disagree with the weights it describes, and a resumed
  run compares its epochs against it rather than starting afresh (Keras's ``ModelCheckpoint``
  forgets its best value in a new process and saves the first resumed epoch, however bad).
- ``backup/chief/ckpt-N``: the full training state after the last finished epoch N (model,
  optimisers, step counters), written by `Backup` in the layout of Keras's ``BackupAndRestore``
  (which wrote it before tfvae 0.2), kept after training ends so that a run killed during its
  final evaluation restarts from the trained weights.

A resumed run rolls back to its backup: epochs after the backup's epoch are trained again, so a
best checkpoint written by such an epoch (a kill between the two writes) no longer belongs to the
run's history and is dropped (`BestCheckpoint.resume`).
"""
import glob
import math
import os
import re
from typing import List, NamedTuple, Optional

import tensorflow as tf
import tf_keras as keras

from tfvae.errors import CheckpointError
from tfvae.training import distribute

KEEP = 2  # good checkpoints kept in each folder: the newest, and one to fall back to
BEST = "best"
_BEST_RE = re.compile(r"best-(\d+)\.index$")


def first_line(err) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def verify(prefix: str) -> None:
    """Reads every tensor of the checkpoint at ``prefix`` (TF checks each one's CRC32C); raises
    `CheckpointError` naming the file when one is missing, truncated or corrupt."""
    files = [prefix + ".index"] + sorted(glob.glob(prefix + ".data-*"))
    missing = [f for f in files if not os.path.exists(f)]
    if missing or len(files) < 2:
        raise CheckpointError(f"{missing[0] if missing else prefix + '.data-*'}: file missing")
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as err:  # noqa: BLE001 - a cut file raises IndexError, OpError, ...
        bad = prefix + ".index" if "sstable" in str(err) or "index" in str(err) else files[-1]
        raise CheckpointError(f"{bad}: corrupt ({first_line(err)})") from None


class Best(NamedTuple):
    path: str     # checkpoint prefix
    epoch: int    # 0-based epoch that produced it
    value: float  # its monitored value


def _read_best(prefix) -> Best:
    reader = tf.train.load_checkpoint(prefix)
    return Best(prefix, int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE")),
                float(reader.get_tensor("value/.ATTRIBUTES/VARIABLE_VALUE")))


def best_checkpoints(directory: str) -> List[str]:
    """Prefixes of ``best-*`` checkpoints in ``directory``, newest epoch first."""
    found = []
    for path in glob.glob(os.path.join(directory, "best-*.index")):
        match = _BEST_RE.search(path)
        if match:
            found.append((int(match.group(1)), path[: -len(".index")]))
    return [p for _, p in sorted(found, reverse=True)]


def find_best(directory: str, before_epoch: Optional[int] = None, warn=print) -> Optional[Best]:
    """The newest intact best checkpoint (of an epoch < ``before_epoch`` if given), or None.

    Corrupt checkpoints are skipped with a warning naming the file (``warn``); raises
    `CheckpointError` if best checkpoints exist but none is intact.
    """
    candidates = best_checkpoints(directory)
    if before_epoch is not None:  # decided by name: such files may be being deleted (resume)
        candidates = [p for p in candidates
                      if int(_BEST_RE.search(p + ".index").group(1)) < before_epoch]
    errors = []
    for prefix in candidates:
        try:
            verify(prefix)
            best = _read_best(prefix)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        if errors:
            warn(f"warning: {'; '.join(errors)}; using the best checkpoint of epoch "
                 f"{best.epoch + 1} ({best.path}) instead")
        return best
    if errors and len(errors) == len(candidates):
        raise CheckpointError(
            f"no intact best checkpoint in {directory} ({'; '.join(errors)}). Restore the files "
            "from a copy, or move the workdir aside and train again")
    return None


def restore(model, prefix: str) -> None:
    """Loads the model weights of a `BestCheckpoint` checkpoint (or a backup) into ``model``.
    Every variable of the model must be found there: a checkpoint of another model, or one
    whose parts moved, fails with `CheckpointError` instead of leaving weights at their
    initial values. (Optimiser slots and counters the checkpoint holds besides are ignored.)"""
    status = tf.train.Checkpoint(model=model).read(prefix)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as err:
        raise CheckpointError(f"{prefix}: does not hold this model's weights "
                              f"({first_line(err)[:300]}); was it written with another config?"
                              ) from None
    status.expect_partial()


class BestCheckpoint(keras.callbacks.Callback):
    """Saves the model whenever ``monitor`` reaches a new maximum, as ``best-EEEEE`` (epoch) in
    ``directory`` with the value and epoch inside; keeps the newest `KEEP`. Call `resume` with
    the epoch training resumes at before ``fit``.

    Under a multi-worker strategy every worker saves (reading replicated state is collective),
    the non-chief ones to a scratch folder that is removed at once, as Keras's callbacks do."""

    def __init__(self, directory: str, monitor: str):
        super().__init__()
        self.directory, self.monitor = directory, monitor
        self.best: Optional[Best] = None
        self._epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="best_epoch")
        self._value = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="best_value")

    def resume(self, epoch: int, warn=print, chief: bool = True) -> Optional[Best]:
        """Restores "best so far" from disk for a run resuming at ``epoch``; best checkpoints of
        epochs >= ``epoch`` (to be trained again) are deleted (by the ``chief`` only)."""
        for prefix in best_checkpoints(self.directory) if chief else []:
            if int(_BEST_RE.search(prefix + ".index").group(1)) >= epoch:
                _remove(prefix)
        self.best = find_best(self.directory, epoch, warn) if os.path.isdir(self.directory) else None
        return self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value, loss = logs.get(self.monitor), logs.get("loss", 0.0)
        if value is None or not math.isfinite(value) or not math.isfinite(loss):
            return  # a diverged epoch is never "best" (nor backed up, see `Backup`)
        if self.best is not None and value <= self.best.value:
            return
        strategy = self.model.distribute_strategy
        directory = distribute.write_dir(self.directory, strategy)
        os.makedirs(directory, exist_ok=True)
        self._epoch.assign(epoch)
        self._value.assign(value)
        prefix = write_best(directory, self.model, self._epoch, self._value)
        if directory != self.directory:  # a non-chief worker: its copy is not kept
            distribute.remove_scratch(self.directory, strategy)
            prefix = os.path.join(self.directory, f"{BEST}-{epoch:05d}")
        self.best = Best(prefix, epoch, float(value))
        for old in best_checkpoints(directory)[KEEP:]:
            _remove(old)


def write_best(directory: str, model, epoch, value) -> str:
    """Writes ``model`` as the best checkpoint of ``epoch`` with its monitored ``value`` inside
    (ints/floats or the `tf.Variable`s `BestCheckpoint` keeps), in the layout `find_best` reads;
    returns its prefix. Also for a run whose weights come from elsewhere (one "epoch" 0)."""
    if not isinstance(epoch, tf.Variable):
        epoch = tf.Variable(int(epoch), dtype=tf.int64, trainable=False)
    if not isinstance(value, tf.Variable):
        value = tf.Variable(float(value), dtype=tf.float64, trainable=False)
    prefix = os.path.join(directory, f"{BEST}-{int(epoch.numpy()):05d}")
    tf.train.Checkpoint(model=model, epoch=epoch, value=value).write(prefix)
    return prefix


def _remove(prefix):
    for path in glob.glob(prefix + ".index") + glob.glob(prefix + ".data-*"):
        os.remove(path)


class Backup(keras.callbacks.Callback):
    """The full training state (model, optimisers, counters) after every finished epoch, as
    ``backup/chief/ckpt-N`` (N epochs done), the newest `KEEP` kept; never an epoch whose loss
    is not finite (a diverged run resumes from the last good epoch). At the start of ``fit`` it
    restores the newest backup: call ``fit`` with ``initial_epoch`` = `resume_epoch`.

    Under a multi-worker strategy every worker saves (reading replicated state is collective),
    the non-chief ones to a scratch folder that is removed at once; every worker restores the
    chief's backup."""

    def __init__(self, backup_dir):
        super().__init__()
        self.backup_dir = backup_dir
        self._epoch = tf.Variable(-1, dtype=tf.int64, trainable=False, name="ckpt_saved_epoch")
        self._checkpoint = self._manager = None

    def on_train_begin(self, logs=None):
        # The checkpoint lives as long as the callback: the optimiser's slots, created at the
        # first step, take their restored values from it then.
        self._checkpoint = tf.train.Checkpoint(model=self.model, ckpt_saved_epoch=self._epoch)
        latest = latest_backup(self.backup_dir, warn=lambda m: None)
        if latest is not None:
            self._checkpoint.read(latest).expect_partial()
        strategy = self.model.distribute_strategy
        self._manager = tf.train.CheckpointManager(
            self._checkpoint, distribute.write_dir(_backup_dir(self.backup_dir), strategy),
            max_to_keep=KEEP, checkpoint_name="ckpt")

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            return
        self._epoch.assign(epoch)
        self._manager.save(checkpoint_number=epoch + 1)
        distribute.remove_scratch(_backup_dir(self.backup_dir), self.model.distribute_strategy)


def _backup_dir(backup_dir):
    return os.path.join(backup_dir, "chief")  # where Keras's BackupAndRestore writes


def latest_backup(backup_dir: str, warn=print) -> Optional[str]:
    """The prefix of the newest intact training backup in ``backup_dir``, or None."""
    if resume_epoch(backup_dir, warn) == 0:
        return None
    # TensorFlow joins the state file's relative paths to the folder it is given: no join here
    return tf.train.get_checkpoint_state(_backup_dir(backup_dir)).model_checkpoint_path


def _backup_paths(directory: str):
    """The backups of ``directory`` oldest first, from its ``checkpoint`` state file, or, when
    that file is damaged, from the ``ckpt-N`` files beside it; and the damage, if any."""
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception as err:  # noqa: BLE001 - a damaged text proto raises several kinds
        found = sorted((int(m.group(1)), p[: -len(".index")])
                       for p in glob.glob(os.path.join(directory, "ckpt-*.index"))
                       for m in [re.search(r"ckpt-(\d+)\.index$", p)] if m)
        damage = f"{os.path.join(directory, 'checkpoint')}: corrupt ({first_line(err)[:80]})"
        return [p for _, p in found], ([damage] if found else [])
    if state is None:
        return [], []
    return list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path], []


def resume_epoch(backup_dir: str, warn=print) -> int:
    """The number of epochs the backup in ``backup_dir`` has finished (0 without one).

    A corrupt newest backup is reported (naming the file) and the one before it used, by
    pointing the folder's ``checkpoint`` state file at it; raises `CheckpointError` when none
    is intact.
    """
    directory = _backup_dir(backup_dir)
    paths, errors = _backup_paths(directory)
    if not paths:
        return 0
    for prefix in reversed(paths):
        try:
            verify(prefix)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        epoch = int(tf.train.load_variable(prefix, "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"))
        if errors:  # Keras restores the state file's newest entry: make that the good one
            good = paths[: paths.index(prefix) + 1]
            try:
                tf.compat.v1.train.update_checkpoint_state(directory, prefix,
                                                           all_model_checkpoint_paths=good)
            except Exception as err:  # noqa: BLE001 - e.g. a folder where the file belongs
                raise CheckpointError(
                    f"{os.path.join(directory, 'checkpoint')} cannot be rewritten "
                    f"({first_line(err)[:80]}); remove it and run again") from None
            warn(f"warning: {'; '.join(errors)}; resuming from the backup of epoch {epoch + 1} "
                 f"({prefix}) instead")
        return epoch + 1
    raise CheckpointError(
        f"no intact training backup in {directory} ({'; '.join(errors)}). Delete {backup_dir} to "
        "train again from the first epoch (metrics.csv is rewritten to match)")
