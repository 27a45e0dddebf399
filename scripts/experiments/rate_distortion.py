#!/usr/bin/env python3
"""Sweeps beta (the rate's weight in the training objective) for one or more priors and places
each trained model in the rate-distortion plane (Alemi et al. 2018, "Fixing a broken ELBO").

    python scripts/experiments/rate_distortion.py --config=configs/mnist_dynamic.py --workdir=runs/rd \\
        --betas=0.1,0.3,1,3,10 --priors=standard_normal,vamp --config.train.epochs=30

Each (prior, beta) trains into WORKDIR/PRIOR/beta_B with the full pipeline (a finished run is
reused, an interrupted one resumes). D and R are measured on the test set at beta = 1 (the ELBO's
own terms). Writes WORKDIR/rate_distortion.md (prior, beta, R, D, ELBO, log p(x)) and
WORKDIR/rate_distortion.png (D against R per prior, lines of equal ELBO behind).
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os

from absl import app, flags  # noqa: E402

from common import config_flag, write_table  # noqa: E402
from tfvae.training import train  # noqa: E402
from tfvae.results import evaluation, plots
from tfvae.distributions import priors

config_flag("Base config file (configs/*.py).")
flags.DEFINE_string("workdir", "runs/rate_distortion", "Parent directory of the runs.")
flags.DEFINE_list("betas", ["0.1", "0.3", "1", "3", "10"], "Values of train.beta.")
flags.DEFINE_list("priors", ["standard_normal", "vamp"], "Priors to sweep.")
flags.mark_flag_as_required("config")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    unknown = [p for p in FLAGS.priors if p not in priors.PRIORS]
    if unknown:
        raise SystemExit(f"rate_distortion: error: unknown priors {unknown}; valid priors are: "
                         f"{', '.join(priors.PRIORS.names())}")
    try:
        betas = [float(b) for b in FLAGS.betas]
    except ValueError:
        raise SystemExit(f"rate_distortion: error: --betas={','.join(FLAGS.betas)}: give "
                         "numbers, e.g. --betas=0.1,1,10") from None
    lines = ["| prior | beta | R | D | ELBO | log p(x) >= |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    curves = {}
    for name in FLAGS.priors:
        for beta in betas:
            config = FLAGS.config.copy_and_resolve_references()
            config.model.prior.name = name
            config.model.prior.update(priors.RECOMMENDED.get(name, {}))
            config.train.beta = beta
            workdir = os.path.join(FLAGS.workdir, name, f"beta_{beta:g}")
            print(f"== {name}, beta = {beta:g}: {workdir}", flush=True)
            results = train.open_or_train(config, workdir).results
            t = {k: evaluation.value(v) for k, v in results["test"].items()
                 if k in ("elbo", "distortion", "rate", "log_likelihood")}
            curves.setdefault(name, []).append((beta, t["rate"], t["distortion"]))
            lines.append(f"| {name} | {beta:g} | {t['rate']:.2f} | {t['distortion']:.2f} | "
                         f"{t['elbo']:.2f} | {t.get('log_likelihood', float('nan')):.2f} |")
    table = write_table(FLAGS.workdir, "rate_distortion.md", lines)
    figure = plots.rate_distortion(curves, os.path.join(FLAGS.workdir, "rate_distortion.png"))
    print(f"table: {table}  figure: {figure}")


if __name__ == "__main__":
    app.run(main)
