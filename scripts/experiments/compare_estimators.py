#!/usr/bin/env python3
"""Trains one model per gradient estimator x control-variate chain with the same budget and
writes a markdown table: test ELBO, importance-sampled log-likelihood, the inference-gradient
variance (last epoch, on a fixed validation batch) and training images/s.

    python scripts/experiments/compare_estimators.py --config=configs/mnist_dynamic.py --workdir=runs/est \\
        --config.data.data_dir=../shared/tfds --config.train.epochs=5

Score-function rows train the inference network with RMSprop at ``--sf_inference_lr`` (the
research notebook's choice: smaller steps than Adam's for noisier gradients) and the baseline
network with Adam; everything else uses the config's optimiser. Each row runs the full training
pipeline into WORKDIR/ROW (a finished one is reused).
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os

from absl import app, flags

from common import config_flag, write_table  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.results import evaluation

config_flag("Base config file (configs/*.py).")
flags.DEFINE_string("workdir", "runs/estimators", "Parent directory of one workdir per row.")
flags.DEFINE_list("rows", None, "Rows to run (default: all of ROWS).")
flags.DEFINE_float("sf_inference_lr", 3e-4, "RMSprop rate of the inference network (score "
                                            "function rows).")
flags.DEFINE_integer("grad_variance_repeats", 16, "Estimates per gradient-variance measurement.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS

# name: (estimator, control variates, posterior, num_samples)
ROWS = {
    "reparameterized": ("reparameterized", "", "gaussian", 1),
    "sf": ("score_function", "", "gaussian", 1),
    "sf+centered": ("score_function", "centered", "gaussian", 1),
    "sf+centered,scaled": ("score_function", "centered,scaled", "gaussian", 1),
    "sf+self_critic": ("score_function", "self_critic", "gaussian", 1),
    "sf+baseline": ("score_function", "baseline", "gaussian", 1),
    "sf+centered,baseline": ("score_function", "centered,baseline", "gaussian", 1),
    "iwae_k5": ("iwae", "", "gaussian", 5),
    "dreg_k5": ("dreg", "", "gaussian", 5),
    "mog_q:reparameterized": ("reparameterized", "", "mog", 1),
    "mog_q:sf+centered,baseline": ("score_function", "centered,baseline", "mog", 1),
    "mog_q:hybrid+centered,baseline": ("hybrid", "centered,baseline", "mog", 1),
}


def row_config(base, name):
    estimator, cvs, posterior, k = ROWS[name]
    config = base.copy_and_resolve_references()
    config.estimator.name, config.estimator.control_variates = estimator, cvs
    config.model.posterior.name, config.model.num_samples = posterior, k
    config.eval.grad_variance_repeats = FLAGS.grad_variance_repeats
    config.eval.plots = False
    if estimator in ("score_function", "hybrid"):
        config.train.groups.inference.optimizer = "rmsprop"
        config.train.groups.inference.learning_rate = FLAGS.sf_inference_lr
        config.train.groups.baseline.optimizer = "adam"
    return config


def main(argv):
    del argv
    import tensorflow as tf
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")
    rows = FLAGS.rows or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; valid rows are: {', '.join(ROWS)}")
    lines = ["| estimator | test ELBO | log p(x) >= | bits/dim | grad variance | images/s | epochs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in rows:
        workdir = os.path.join(FLAGS.workdir, name.replace(":", "_").replace(",", "_"))
        print(f"== {name}", flush=True)
        results = train.open_or_train(row_config(FLAGS.config, name), workdir).results
        with open(os.path.join(workdir, "metrics.csv")) as f:
            last = f.read().strip().splitlines()
        header, values = last[0].split(","), last[-1].split(",")
        variance = float(values[header.index("grad_variance")])
        t = {k: evaluation.value(results["test"][k])
             for k in ("elbo", "log_likelihood", "bits_per_dim")}
        bits = t["bits_per_dim"]
        lines.append(f"| {name} | {t['elbo']:.2f} | {t['log_likelihood']:.2f} | {bits:.4f} | "
                     f"{variance:.3g} | {results['train_images_per_s']:.0f} | "
                     f"{results['epochs_trained']} |")
        print(lines[-1], flush=True)
    write_table(FLAGS.workdir, "estimators.md", lines)


if __name__ == "__main__":
    app.run(main)
