"""Opening a workdir written by ``tfvae-train``, finished or not: its config, data and model with
its best weights. `tfvae.train.open_or_train` trains it first where it is not finished."""
import json
import os
from typing import NamedTuple, Optional

from tfvae import checkpoints, runstate
from tfvae import data as data_lib
from tfvae import builder, model as model_lib
from tfvae.errors import CheckpointError, WorkdirError


class OpenedRun(NamedTuple):
    config: object
    splits: data_lib.Splits
    model: model_lib.VAE
    source: str                     # which weights: the best checkpoint, or the backup
    results: Optional[dict] = None  # ``results.json`` of a finished run


def _say(message):
    import sys
    print(message, file=sys.stderr, flush=True)


def open_run(workdir: str, warn=_say) -> OpenedRun:
    """A workdir's config (translated from older tfvae versions, `tfvae.runstate.read_config`),
    data and model with its best weights: the best checkpoint, else (a run interrupted before
    its first validation) the training backup; and its results if finished."""
    path = os.path.join(workdir, runstate.CONFIG)
    if not os.path.exists(path):
        raise WorkdirError(f"--workdir={workdir} holds no run (no {runstate.CONFIG}); give the "
                           "workdir of a tfvae-train run")
    config = runstate.read_config(path)
    splits = data_lib.load(config.data, seed=config.seed, with_labels=True)
    model = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                            train_images=data_lib.first_images(splits, 64),
                            num_classes=splits.num_classes,
                            num_labelled=splits.num_labelled, num_train=splits.num_train)
    results = None
    if os.path.exists(os.path.join(workdir, runstate.RESULTS)):
        with open(os.path.join(workdir, runstate.RESULTS)) as f:
            results = json.load(f)
    best = checkpoints.find_best(os.path.join(workdir, "checkpoints"), warn=warn)
    if best is not None:
        checkpoints.restore(model, best.path)
        return OpenedRun(config, splits, model,
                         f"best checkpoint (epoch {best.epoch + 1}): {best.path}", results)
    backup = checkpoints.latest_backup(os.path.join(workdir, "backup"), warn=warn)
    if backup is None:
        raise CheckpointError(f"{workdir} holds no checkpoint yet (no checkpoints/best-*, no "
                              "backup/): train at least one epoch first")
    checkpoints.restore(model, backup)
    return OpenedRun(config, splits, model, f"training backup (no best checkpoint yet): {backup}",
                     results)


def is_finished(workdir: str) -> bool:
    """Whether the workdir holds a finished run (its ``results.json``)."""
    return os.path.exists(os.path.join(workdir, runstate.RESULTS))
