"""``tfvae-evaluate``: measure a finished or interrupted run on its own, with error bars and
the diagnostics that say whether to trust the numbers.

    tfvae-evaluate --workdir=runs/default [--split=test] [--iw_samples=1000] [--examples=0]
                   [--seed=N]

Uses the run's best checkpoint (else its training backup) and says which. Reports, each with its
standard error over images: ELBO, distortion D, rate R, the importance-sampled log p(x); the
importance weights' effective sample size (mean fraction of k, 5th percentile) and Pareto k-hat
(images above 0.7 are named as unreliable); ELBO surgery R = I + KL(q(z) || p(z)); active units
and collapsed dimensions. Writes ``evaluation.json`` beside the run; the seed used is recorded
(a new one each call unless ``--seed`` is given, so repeats are independent).
"""
import os
import sys
import time
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfvae import diagnostics, evaluation, runstate
from tfvae.progress import Progress

EVALUATION = "evaluation.json"
SPLITS = ("test", "validation")


def _images(dataset, examples: int):
    parts, n = [], 0
    for batch in dataset:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        parts.append(x.numpy())
        n += len(parts[-1])
        if examples and n >= examples:
            break
    x = np.concatenate(parts)
    return x[:examples] if examples else x


def evaluate(model, images, iw_samples: int, batch_size: int = 100, seed: int = 0,
             progress=sys.stderr) -> dict:
    """Every measurement of this module for ``images`` ``[N, H, W, C]`` (see module doc)."""
    keras.utils.set_random_seed(seed)
    n = len(images)
    terms = [model.elbo_terms(tf.constant(images[i:i + 500]), seed=tf.constant([seed, i]))
             for i in range(0, n, 500)]
    out = {key: diagnostics.mean_and_se(np.concatenate([getattr(t, key).numpy() for t in terms]))
           for key in ("elbo", "distortion", "rate")}
    out["num_examples"] = n
    to_bits = 1.0 / (np.prod(model.image_shape) * np.log(2.0))  # nats of -log p -> bits/dim
    out["elbo_bits_per_dim"] = {"mean": -out["elbo"]["mean"] * to_bits,
                                "se": out["elbo"]["se"] * to_bits}
    if iw_samples:
        bar = Progress(n, f"log p(x), k={iw_samples}", stream=progress)
        per_image = {}
        for i in range(0, n, batch_size):
            found = diagnostics.weight_diagnostics(
                model.log_weights(images[i:i + batch_size], iw_samples, seed=(seed, i)))
            for key, value in found.items():
                per_image.setdefault(key, []).append(value)
            bar.update(len(images[i:i + batch_size]))
        bar.close()
        per_image = {k: np.concatenate(v) for k, v in per_image.items()}
        out["log_likelihood"] = diagnostics.mean_and_se(per_image["log_likelihood"])
        out["bits_per_dim"] = {"mean": -out["log_likelihood"]["mean"] * to_bits,
                               "se": out["log_likelihood"]["se"] * to_bits}
        out["iw_samples"] = int(iw_samples)
        out["importance_weights"] = diagnostics.summarize_weights(per_image)
        bad = np.flatnonzero(per_image["khat"] > diagnostics.KHAT_THRESHOLD)
        out["importance_weights"]["unreliable_indices"] = bad[:100].tolist()
    try:
        out["elbo_surgery"] = diagnostics.elbo_surgery(model, images, seed=seed)
    except ValueError as err:
        out["elbo_surgery"] = {"skipped": str(err)}
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(500)
    out["active_units"] = evaluation.active_units(model, dataset)
    out["collapsed_dimensions"] = diagnostics.collapsed_dimensions(
        model, tf.constant(images[:1000]), seed=seed)
    return out


def _format(result: dict) -> str:
    def row(name, v, unit="nats"):
        return f"  {name:<28s} {v['mean']:10.3f} +- {v['se']:.3f} {unit}"
    lines = [f"{result['split']} split, {result['num_examples']} images, weights: "
             f"{result['weights']}", row("ELBO", result["elbo"]),
             row("distortion D", result["distortion"]), row("rate R", result["rate"])]
    if "log_likelihood" in result:
        w = result["importance_weights"]
        lines += [row(f"log p(x) >= (k={result['iw_samples']})", result["log_likelihood"]),
                  row("  in bits/dim", result["bits_per_dim"], "bits"),
                  f"  {'ESS / k':<28s} mean {w['ess_fraction_mean']:.3f}, 5th percentile "
                  f"{w['ess_fraction_p5']:.4f}",
                  f"  {'Pareto k-hat':<28s} median {w['khat_median']:.2f}, max "
                  f"{w['khat_max']:.2f}"]
        if w["unreliable_images"]:
            lines.append(
                f"  warning: {w['unreliable_images']} of {result['num_examples']} images have "
                f"k-hat > {w['khat_threshold']}: their importance-sampled estimates are not "
                "reliable (the weights' variance may be infinite); raise --iw_samples or use a "
                "better posterior (indices in evaluation.json)")
    s = result["elbo_surgery"]
    if "marginal_kl" in s:
        lines += [row("I_q(n; z)", s["mutual_information"]),
                  row("KL(q(z) || p(z))", s["marginal_kl"])]
    lines.append(f"  {'active units':<28s} {result['active_units']}"
                 + (f" (collapsed dims, KL < 0.01: {result['collapsed_dimensions']})"
                    if result["collapsed_dimensions"] is not None else ""))
    return "\n".join(lines)


def run(workdir: str, split: str = "test", iw_samples: int = 1000, examples: int = 0,
        seed: Optional[int] = None, batch_size: int = 100, progress=sys.stderr) -> dict:
    """Evaluates the run in ``workdir``; writes and returns ``evaluation.json``'s content."""
    from tfvae.errors import ConfigError
    from tfvae.train import open_run
    if split not in SPLITS:
        raise ConfigError(f"--split={split!r}; valid splits are: {', '.join(SPLITS)}")
    for name, value, low in (("iw_samples", iw_samples, 0), ("examples", examples, 0),
                             ("batch_size", batch_size, 1)):
        if value < low:
            raise ConfigError(f"--{name}={value} must be >= {low}")
    seed = int(seed) if seed is not None else int(time.time_ns() % (2 ** 31 - 1))
    config, splits, model, source = open_run(workdir)
    print(f"evaluating with the {source}", file=progress or sys.stderr)
    images = _images(getattr(splits, split), examples)
    result = {"split": split, "weights": source, "seed": seed}
    result |= evaluate(model, images, iw_samples, batch_size, seed, progress)
    runstate.write_json(os.path.join(workdir, EVALUATION), result)
    return result


def define_flags():
    from absl import flags
    flags.DEFINE_string("workdir", None, "Workdir of a tfvae-train run (finished or not).")
    flags.DEFINE_enum("split", "test", list(SPLITS), "Which split to evaluate.")
    flags.DEFINE_integer("iw_samples", 1000, "Importance samples k per image (0: none).")
    flags.DEFINE_integer("examples", 0, "Images to evaluate (0: the whole split).")
    flags.DEFINE_integer("batch_size", 100, "Images per importance-sampling batch.")
    flags.DEFINE_integer("seed", None, "Seed of every random draw (default: a new one).")
    flags.mark_flag_as_required("workdir")


def main(argv):
    from absl import flags, logging

    from tfvae.errors import CheckpointError, ConfigError, DataError, WorkdirError
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise SystemExit(f"tfvae-evaluate: error: unexpected arguments: {' '.join(argv[1:])}")
    f = flags.FLAGS
    try:
        result = run(f.workdir, f.split, f.iw_samples, f.examples, f.seed, f.batch_size)
    except (ConfigError, DataError, CheckpointError, WorkdirError) as err:
        raise SystemExit(f"tfvae-evaluate: error: {err}") from None
    print(_format(result))
    print(f"written: {os.path.join(f.workdir, EVALUATION)}")
