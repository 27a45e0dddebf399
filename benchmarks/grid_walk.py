#!/usr/bin/env python3
"""Walks the grid of parts: every prior x posterior x likelihood x pixel mode x network x label
role x number of latent layers either trains a step, evaluates and samples (and, with
``--export``, exports a SavedModel and samples from it), or is refused before training with
one line (`ConfigError` / `DataError` from validation, data loading or building).

Anything else is a fault of tfvae: a traceback during training, evaluation or sampling, a
non-finite loss, a refusal message of more than one line. Each combination runs on 64 real
FashionMNIST images (``../shared/data/fashion_mnist_sample``) with latent sizes 4 (and 2),
hidden layers of 16 units, so a combination costs about a second (plus the trace of its
steps).

  python benchmarks/grid_walk.py                       # the whole grid (hours on 2 cores)
  python benchmarks/grid_walk.py --sample 40 --seed 0  # 40 combinations drawn with a seed
  python benchmarks/grid_walk.py --shard 1/4 --out walk.jsonl  # resumable: skips those done

Prints one line per combination and a summary; exits 1 if any combination is a fault.
``tests/test_faults.py`` walks a seeded sample of it.
"""
import argparse
import itertools
import json
import os
import random
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
IDX = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data",
                   "fashion_mnist_sample")

LABEL_ROLES = ("none", "observed", "latent", "component")  # what a label y is
GRID = {
    "prior": ("standard_normal", "mog", "vamp", "gtm", "gtm_vamp", "realnvp"),
    "posterior": ("gaussian", "iaf", "mog", "realnvp"),
    "likelihood": ("bernoulli", "continuous_bernoulli", "gaussian", "categorical",
                   "discretized_logistic", "discretized_logistic_mixture"),
    "pixels": ("binary", "continuous"),
    "network": ("mlp", "gated_mlp", "cnn", "gated_cnn"),
    "labels": LABEL_ROLES,
    "layers": (1, 2),
}


def combinations():
    """Every combination, as dicts, in a fixed order."""
    return [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]


def sample(n: int, seed: int):
    """``n`` combinations drawn without replacement with ``seed``."""
    return random.Random(seed).sample(combinations(), n)


def name(combo) -> str:
    return " ".join(f"{k}={v}" for k, v in combo.items())


def config_of(combo, idx_dir: str = IDX):
    """The tfvae config of ``combo``: tiny networks on 64 FashionMNIST training images."""
    from tfvae.config import get_config
    c = get_config()
    c.data.source, c.data.idx_dir = "idx", idx_dir
    c.data.train_size, c.data.validation_size, c.data.test_size = 64, 32, 32
    c.data.batch_size = c.data.eval_batch_size = 32
    c.data.pixels = combo["pixels"]
    c.model.latent_dims = (4,) if combo["layers"] == 1 else (4, 2)
    c.model.network.name = combo["network"]
    c.model.network.hidden = (16,)
    c.model.prior.name = combo["prior"]
    # A square (a 2 x 2 GTM grid), or one component per class for an annotated mixture.
    c.model.prior.components = 10 if combo["labels"] == "component" else 4
    c.model.posterior.name = combo["posterior"]
    c.model.likelihood.name = combo["likelihood"]
    role = combo["labels"]
    if role != "none":
        c.data.labels = "all" if role == "observed" else "2"
    c.model.label = role
    c.train.epochs = 1
    c.train.steps_per_execution = 1
    c.train.jit_compile = "false"  # the grid is about what runs, not its speed
    c.eval.iw_samples, c.eval.iw_examples, c.eval.plots = 3, 8, False
    return c


def walk_one(combo, idx_dir: str = IDX, export: bool = False) -> dict:
    """``{"outcome": "trained" | "refused" | "fault", "message", "seconds"}`` of ``combo``."""
    import numpy as np
    import tf_keras as keras

    from tfvae.training import validation
    from tfvae.results import evaluation
    from tfvae.training import runs, train
    from tfvae.errors import ConfigError, DataError
    start = time.time()
    config = config_of(combo, idx_dir)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    try:
        validation.validate(config)
        splits = runs.load_data(config, warn=lambda m: None)
        model = train.build_model(config, splits)
    except (ConfigError, DataError) as err:
        text = str(err)
        outcome = "refused" if text and "\n" not in text else "fault"
        return {"outcome": outcome, "message": text, "seconds": time.time() - start}
    except Exception as err:  # noqa: BLE001 - a crash before training is what is looked for
        return _fault("build", err, start)
    try:
        data, validation = train.training_data(model, splits)
        history = model.fit(data, epochs=1, steps_per_epoch=1, validation_data=validation,
                            verbose=0)
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):
            return {"outcome": "fault", "message": f"loss {loss} after one step",
                    "seconds": time.time() - start}
        result = evaluation.evaluate(model, splits.test, iw_samples=3, iw_examples=8,
                                     iw_batch_size=8, progress=None)
        elbo = result["elbo"]["mean"]
        images = np.asarray(model.sample(4, seed=(1, 2)))
        if images.shape[0] != 4 or not np.all(np.isfinite(images)):
            return {"outcome": "fault", "message": f"samples {images.shape}, not finite",
                    "seconds": time.time() - start}
        if export:
            _export_and_sample(model, config)
    except Exception as err:  # noqa: BLE001
        return _fault("train/evaluate/sample", err, start)
    return {"outcome": "trained", "message": f"loss {loss:.1f}, test ELBO {elbo:.1f}",
            "seconds": time.time() - start}


def _export_and_sample(model, config):
    import numpy as np
    import tensorflow as tf

    from tfvae.results import export
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "saved_model")
        export.export(model, path, config)
        loaded = tf.saved_model.load(path)
        z = loaded.sample_latents(tf.constant(4), tf.constant(1, tf.int64),
                                  tf.constant(1.0))["z"]
        if hasattr(loaded, "sample_conditional"):
            images = loaded.sample_conditional(tf.constant([0, 1, 0, 1]),
                                               tf.constant(1, tf.int64))["images"]
        else:
            images = loaded.decode(z)["mean"]
        if not np.all(np.isfinite(np.asarray(images))):
            raise ValueError("the SavedModel's samples are not finite")


def _fault(stage, err, start):
    first = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
    return {"outcome": "fault", "message": f"{stage}: {type(err).__name__}: {first}",
            "seconds": time.time() - start}


def main():
    a = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    a.add_argument("--sample", type=int, default=0, help="walk N combinations drawn with --seed")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--shard", default="1/1", help="I/N: the I-th of N interleaved parts")
    a.add_argument("--out", default="", help="JSON lines, one per combination; resumable")
    a.add_argument("--export", action="store_true", help="also export and sample a SavedModel")
    a.add_argument("--idx_dir", default=IDX)
    args = a.parse_args()
    combos = sample(args.sample, args.seed) if args.sample else combinations()
    i, n = (int(v) for v in args.shard.split("/"))
    combos = combos[i - 1::n]
    done = {}
    if args.out and os.path.exists(args.out):
        with open(args.out) as f:
            for line in f:
                row = json.loads(line)
                done[row["combination"]] = row
    counts = {"trained": 0, "refused": 0, "fault": 0}
    for k, combo in enumerate(combos):
        key = name(combo)
        row = done.get(key)
        if row is None:
            row = {"combination": key, **walk_one(combo, args.idx_dir, args.export)}
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
        counts[row["outcome"]] += 1
        print(f"[{k + 1}/{len(combos)}] {row['outcome']:8s} {key}: {row['message']}",
              flush=True)
    print(f"{len(combos)} combinations: {counts['trained']} train, evaluate and sample; "
          f"{counts['refused']} refused in one line; {counts['fault']} faults")
    sys.exit(1 if counts["fault"] else 0)


if __name__ == "__main__":
    main()
