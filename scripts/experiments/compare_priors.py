#!/usr/bin/env python3
"""Trains every prior with the same budget and compares them: a markdown table and a figure.

    python scripts/experiments/compare_priors.py --config=configs/mnist_dynamic.py --workdir=runs/priors \\
        --config.data.data_dir=../shared/tfds --config.train.epochs=10

Each prior runs the full training pipeline into WORKDIR/PRIOR (a finished one is reused, so an
interrupted comparison continues where it stopped), with its settings from
`tfvae.distributions.priors.RECOMMENDED` on top of the config. Writes WORKDIR/priors.md (test ELBO, D, R,
ELBO surgery: I_q(n; z) and KL(q(z) || p(z)) with standard errors, importance-sampled
log-likelihood, active units, wall time) and WORKDIR/priors.png: for a 2-D
latent, prior density contours under encoder samples of test data, one panel per prior; for
more dimensions, histograms of prior samples against the aggregated posterior per coordinate.
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
from common import config_flag
import os
import time

from absl import app, flags

import numpy as np  # noqa: E402

from tfvae.training import train  # noqa: E402
from tfvae.inference import diagnostics
from tfvae.results import evaluation, plots
from tfvae.distributions import priors

config_flag("Base config file (configs/*.py).")
flags.DEFINE_string("workdir", "runs/priors", "Parent directory of one workdir per prior.")
flags.DEFINE_list("priors", list(priors.RECOMMENDED), "Priors to compare.")
flags.DEFINE_integer("prior_components", 0, "Overrides K of every mixture prior (0: keep).")
flags.DEFINE_integer("surgery_images", 10000, "Test images of the ELBO surgery's q(z).")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def table(rows):
    """``rows``: (name, results, wall seconds, ELBO surgery of the test images)."""
    lines = ["| prior | test ELBO | D | R | I_q(n; z) | KL(q(z) &#124;&#124; p(z)) | log p(x) >= | "
             "bits/dim | k | active units | train s | epochs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r, wall, surgery in rows:
        t = {k: evaluation.value(v) if isinstance(v, (dict, float, int)) and k != "importance_weights"
             else v for k, v in r["test"].items()}
        info, marginal = surgery["mutual_information"], surgery["marginal_kl"]
        lines.append(f"| {name} | {t['elbo']:.2f} | {t['distortion']:.2f} | {t['rate']:.2f} | "
                     f"{info['mean']:.2f} +- {info['se']:.2f} | "
                     f"{marginal['mean']:.2f} +- {marginal['se']:.2f} | "
                     f"{t.get('log_likelihood', float('nan')):.2f} | "
                     f"{t.get('bits_per_dim', float('nan')):.4f} | {t.get('iw_samples', '-')} | "
                     f"{t['active_units']} | {r['train_time_s']:.0f} | {r['epochs_trained']} |")
    return "\n".join(lines)


def main(argv):
    del argv
    from absl import logging
    import tensorflow as tf
    logging.set_verbosity(logging.WARNING)
    tf.get_logger().setLevel("ERROR")  # retracing notes: each prior is a new model, by design
    unknown = [p for p in FLAGS.priors if p not in priors.PRIORS]
    if unknown:
        raise SystemExit(f"unknown priors {unknown}; valid priors are: "
                         f"{', '.join(priors.PRIORS.names())}")
    rows, panels = [], []
    for name in FLAGS.priors:
        config = FLAGS.config.copy_and_resolve_references()
        config.model.prior.name = name
        config.model.prior.update(priors.RECOMMENDED.get(name, {}))
        if FLAGS.prior_components and name != "standard_normal":
            config.model.prior.components = FLAGS.prior_components
        workdir = os.path.join(FLAGS.workdir, name)
        start = time.perf_counter()
        print(f"== {name}: {workdir}", flush=True)
        run = train.open_or_train(config, workdir)
        images = np.concatenate([b[0].numpy() for b in run.splits.test])[:FLAGS.surgery_images]
        surgery = diagnostics.elbo_surgery(run.model, images, seed=0)
        rows.append((name, run.results, time.perf_counter() - start, surgery))
        class_names = run.splits.class_names
        print(evaluation.summary(run.results["test"], split="test"), flush=True)
        z, y = evaluation.encode_dataset(run.model, run.splits.test, 2000, sample=True)
        panel = {"name": name, "z": z, "labels": y, "posterior_samples": z,
                 "prior_samples": run.model.prior.sample(20000).numpy()}
        if tuple(run.model.latent_dims) == (2,):
            prior = run.model.prior
            panel["log_density"] = lambda pts, prior=prior: prior.log_prob(pts).numpy()
        panels.append(panel)

    markdown = table(rows)
    with open(os.path.join(FLAGS.workdir, "priors.md"), "w") as f:
        f.write(markdown + "\n")
    figure = os.path.join(FLAGS.workdir, "priors.png")
    if panels[0]["z"].shape[1] == 2:
        plots.latent_density(panels, figure, title="Prior density (contours) and encoder samples "
                                                   "of test images (aggregated posterior)",
                             class_names=class_names)
    else:
        plots.prior_histograms(panels, figure)
    print(markdown)
    print(f"table: {os.path.join(FLAGS.workdir, 'priors.md')}  figure: {figure}")


if __name__ == "__main__":
    app.run(main)
