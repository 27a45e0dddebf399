"""Opening a workdir written by ``tfvae-train``, finished or not: its config, data and model with
its best weights. `tfvae.training.train.open_or_train` trains it first where it is not finished. A run's
data may be another run's features (``data.features``, `load_data`).

References:
  [1] Kingma, Rezende, Mohamed and Welling (2014). Semi-Supervised Learning with Deep
      Generative Models. NeurIPS.
"""
import dataclasses
import os
import sys
import time
from typing import Dict, NamedTuple, Optional

import tensorflow as tf

from tfvae import data as data_lib
from tfvae import storage
from tfvae.errors import CheckpointError, ConfigError, WorkdirError
from tfvae.models import builder
from tfvae.models import model as model_lib
from tfvae.results import evaluation, structure
from tfvae.training import checkpoints, locks, runstate


class OpenedRun(NamedTuple):
    config: object
    splits: data_lib.Splits
    model: model_lib.VAE
    source: str                     # which weights: the best checkpoint, or the backup
    results: Optional[dict] = None  # ``results.json`` of a finished run


def _say(message):
    print(message, file=sys.stderr, flush=True)


def open_run(workdir: str, warn=_say) -> OpenedRun:
    """A workdir's config (translated from older tfvae versions, `tfvae.training.runstate.read_config`),
    data and model with its best weights: the best checkpoint, else (a run interrupted before
    its first validation) the training backup; and its results if finished."""
    path = os.path.join(workdir, runstate.CONFIG)
    if not os.path.exists(path):
        raise WorkdirError(f"--workdir={workdir} holds no run (no {runstate.CONFIG}); give the "
                           "workdir of a tfvae-train run")
    config = runstate.read_config(path)
    splits = load_data(config, warn=warn)
    model = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                          train_images=data_lib.first_images(splits, 64),
                          num_classes=splits.num_classes,
                          num_labelled=splits.num_labelled, num_train=splits.num_train)
    results = runstate.RunDir(workdir).results()
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


def load_data(config, shard=None, warn=_say) -> data_lib.Splits:
    """A run's data: ``config.data``'s images and labels, or, where ``data.features`` names the
    workdir of a trained run (M1 of [1]), that run's codes of the same images, ``[B, 1, 1, d]``,
    labels kept, as the authors' code [2] makes them: training images get draws z ~ q(z|x)
    (``data.features_sample``; else the means), validation and test images the means E_q[z|x];
    and only the d dimensions whose mean varies over the first 1,000 training images by a
    standard deviation above ``data.features_min_sd`` are kept (a collapsed unit carries no
    information, and a Gaussian p(features) would spend its effort on its near-constant
    value). The images are encoded as they stream (a training image binarised afresh each
    epoch gets a fresh code), by the M1 run's best weights.

    [2] https://github.com/dpkingma/nips14-ssl, ``learn_yz_x_ss.py``."""
    splits = data_lib.load(config.data, seed=config.seed, with_labels=True, shard=shard)
    if not config.data.features:
        return splits
    where = f"data.features={config.data.features!r}"
    if not os.path.exists(os.path.join(config.data.features, runstate.CONFIG)):
        raise WorkdirError(f"{where} holds no run (no {runstate.CONFIG}); give the workdir of "
                           "a trained tfvae-train run (M1)")
    if not is_finished(config.data.features):
        raise WorkdirError(f"{where}: that run has not finished (no {runstate.RESULTS}), so its "
                           "best weights, and these features, could still change; finish it "
                           "first")
    m1 = open_run(config.data.features, warn=warn)
    if len(m1.model.nodes) > 1:
        raise ConfigError(f"{where}: its model has labels or several latent layers; give the "
                          "workdir of a one-layer VAE without labels (M1)")
    if tuple(m1.splits.image_shape) != tuple(splits.image_shape):
        raise ConfigError(f"{where} encodes {m1.splits.image_shape} images but data gives "
                          f"{splits.image_shape}; give the data its M1 run was trained on")
    model, d = m1.model, config.data
    keep = _varying_dimensions(model, splits.train, d.features_min_sd, where)

    def encoder(sample):
        @tf.function
        def encode(x, y):
            q = model.encode(x, training=False)
            z = q.sample() if sample else model.code(q)
            return tf.gather(z, keep, axis=-1)[:, None, None, :], y
        return encode

    def features(ds, sample=False):
        return None if ds is None else ds.map(encoder(sample), num_parallel_calls=2,
                                              deterministic=True)

    return dataclasses.replace(
        splits, train=features(splits.train, d.features_sample),
        validation=features(splits.validation), test=features(splits.test),
        labelled=features(splits.labelled, d.features_sample), image_shape=(1, 1, len(keep)))


def _varying_dimensions(model, train, min_sd: float, where: str, n: int = 1000):
    """Indices of the latent dimensions whose code E_q[z|x] has a standard deviation above
    ``min_sd`` over the first ``n`` images of ``train`` (all of them where ``min_sd`` is 0)."""
    if min_sd <= 0:
        return tf.range(model.latent_dim)
    codes, seen = [], 0
    for batch in train:
        codes.append(model.code(model.encode(data_lib.images_of(batch), training=False)))
        seen += int(codes[-1].shape[0])
        if seen >= n:
            break
    sd = tf.math.reduce_std(tf.concat(codes, 0)[:n], axis=0)
    keep = tf.where(sd > min_sd)[:, 0]
    if int(tf.size(keep)) == 0:
        raise ConfigError(f"{where}: no dimension of its codes varies by a standard deviation "
                          f"above data.features_min_sd={min_sd} (largest: "
                          f"{float(tf.reduce_max(sd)):.3g}); lower it, or 0 keeps them all")
    return tf.cast(keep, tf.int32)


def destination(workdir: str, out: Optional[str] = "", say=None) -> Optional[str]:
    """Where `evaluate_run` writes: ``out`` if given (its folder made, `storage.output_file`),
    else ``WORKDIR/evaluation.json`` unless a training holds the workdir (`tfvae.training.locks`): then
    nothing is written there, and ``say`` is told so."""
    if out:
        return storage.output_file(out, "--out", (".json",))
    if out is None:
        return None
    who = locks.holder(workdir)
    if who is not None:
        if say is not None:
            say(f"note: a training ({locks.describe(who)}) holds {workdir}: "
                f"{evaluation.EVALUATION} is not written into it; give --out=FILE.json to keep "
                "this evaluation")
        return None
    return os.path.join(workdir, evaluation.EVALUATION)


def evaluate_run(workdir: str, split: str = "test", iw_samples: int = 1000, examples: int = 0,
                 seed: Optional[int] = None, batch_size: int = 100, progress=sys.stderr,
                 out: Optional[str] = "") -> Dict:
    """Evaluates a workdir's best weights (else its training backup) on ``split`` with every
    diagnostic, and writes it to ``out`` (default ``evaluation.json`` beside the run, if no
    training holds the workdir; None: nowhere, `destination`): `tfvae.results.evaluation`'s schema plus ``split``,
    ``weights`` (which checkpoint) and ``seed`` (a new one each call unless given)."""
    if split not in evaluation.SPLITS:
        raise ConfigError(f"--split={split!r}; valid splits are: "
                          f"{', '.join(evaluation.SPLITS)}")
    for name, v, low in (("iw_samples", iw_samples, 1), ("examples", examples, 0),
                         ("batch_size", batch_size, 1)):
        if v < low:
            raise ConfigError(f"--{name}={v} must be >= {low}")
    seed = int(seed) if seed is not None else int(time.time_ns() % (2 ** 31 - 1))
    path = destination(workdir, out, say=lambda m: print(m, file=progress or sys.stderr))
    opened = open_run(workdir)
    print(f"evaluating with the {opened.source}", file=progress or sys.stderr)
    dataset = getattr(opened.splits, split)
    if examples:
        dataset = dataset.unbatch().take(examples).batch(batch_size)
    result = {"split": split, "weights": opened.source, "seed": seed}
    result |= evaluation.evaluate(opened.model, dataset, iw_samples, 0, batch_size, seed,
                       with_diagnostics=True, progress=progress)
    result |= structure.measure(opened.model, opened.config, split, seed)
    if path is not None:
        runstate.write_json(path, result)
    return result
