#!/usr/bin/env python3
"""Tables and a figure of literature-protocol runs against the published values.

    python scripts/experiments/reproduction_report.py --runs=mnist,standard=runs/lit_mnist_standard \\
        --runs=mnist,vamp=runs/lit_mnist_vamp --out=docs/reproduction

For each run (finished or still training) it reads ``metrics.csv``, ``run.json`` and, if the run
has finished, ``results.json``; writes ``OUT.md`` (published test log p(x), tfvae's, epochs,
early-stopped or not, wall time) and ``OUT.png`` (validation ELBO per epoch, the published test
log-likelihood as a line: the ELBO is a lower bound on it, so the curve ends below the line).
Nothing is extrapolated: a run that is still training reports its epochs and best ELBO so far.
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from tfvae.training import runstate  # noqa: E402
from tfvae.results import evaluation

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Test log p(x) in nats, S = 5,000: one latent layer, the Exemplar VAE authors' runs of the
# VampPrior protocol; two layers (hvae_*, convhvae_*: `configs/literature.py`), Tomczak and
# Welling (2018), Table 2, dynamic MNIST, as the issue quotes it.
PUBLISHED = {("mnist", "standard"): -84.45, ("mnist", "vamp"): -82.43,
             ("fashion_mnist", "standard"): -228.70, ("fashion_mnist", "vamp"): -227.35,
             ("mnist", "hvae_vamp"): -81.24, ("mnist", "convhvae_vamp"): -79.75}

flags.DEFINE_multi_string("runs", [], "DATASET,PRIOR=WORKDIR (repeat).")
flags.DEFINE_string("out", "docs/reproduction", "Output path without extension.")
flags.DEFINE_multi_string(
    "snapshot", [], "DATASET,PRIOR:EPOCH=LOGP (repeat): a measured test log p(x) (tfvae-evaluate, "
    "S = 5,000) of that run's best checkpoint at EPOCH, drawn as a point.")
flags.DEFINE_string("hardware", "2-core CPU (this project's machine)", "Where the runs ran.")
FLAGS = flags.FLAGS


def _row(key, workdir):
    rundir = runstate.RunDir(workdir)
    history = rundir.history()
    state, results = rundir.state(), rundir.results()
    val = np.asarray(history.get("val_elbo", []), np.float64)
    return {"key": key, "workdir": workdir, "history": history, "state": state,
            "results": results, "epochs": len(val),
            "best_val_elbo": float(np.nanmax(val)) if len(val) else None,
            "best_epoch": int(np.nanargmax(val)) + 1 if len(val) else None,
            "hours": float(np.nansum(history.get("epoch_time_s", []))) / 3600}


def main(argv):
    del argv
    rows = []
    for spec in FLAGS.runs:
        key, _, workdir = spec.partition("=")
        dataset, _, prior = key.partition(",")
        rows.append(_row((dataset, prior), workdir))
    lines = ["| data | prior | published log p(x) | tfvae test log p(x) | best val ELBO (epoch) "
             "| epochs | stopped | train time | workdir |", "|" + " --- |" * 9]
    for r in rows:
        test = evaluation.value(r["results"]["test"]["log_likelihood"]) if r["results"] else None
        stopped = r["state"].get("stopped") or "still training"
        published = f"{PUBLISHED[r['key']]:.2f}" if r["key"] in PUBLISHED else "none published"
        lines.append(
            f"| {r['key'][0]} | {r['key'][1]} | {published} | "
            f"{f'{test:.2f}' if test is not None else 'not yet (training)'} | "
            f"{r['best_val_elbo']:.2f} ({r['best_epoch']}) | {r['epochs']} | {stopped} | "
            f"{r['hours']:.2f} h, {FLAGS.hardware} | `{r['workdir']}` |")
    os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
    with open(FLAGS.out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    fig, axes = plt.subplots(1, max(1, len(rows)), figsize=(5.2 * max(1, len(rows)), 3.8),
                             squeeze=False)
    for ax, r in zip(axes[0], rows):
        val = r["history"].get("val_elbo", [])
        ax.plot(np.arange(1, len(val) + 1), val, lw=1, label="validation ELBO",
                marker="o" if len(val) < 5 else None, ms=4)
        if r["key"] in PUBLISHED:
            ax.axhline(PUBLISHED[r["key"]], color="k", ls="--", lw=1,
                       label=f"published test log p(x) {PUBLISHED[r['key']]:.2f}")
        points = [spec.split(":", 1)[1].split("=") for spec in FLAGS.snapshot
                  if tuple(spec.split(":", 1)[0].split(",")) == r["key"]]
        if points:
            ax.plot([int(e) for e, _ in points], [float(v) for _, v in points], "o",
                    color="tab:orange", ms=4, label="test log p(x), S = 5,000 (subset)")
        if r["results"]:
            t = evaluation.value(r["results"]["test"]["log_likelihood"])
            ax.axhline(t, color="tab:red", lw=1, label=f"tfvae test log p(x) {t:.2f}")
        finite = np.asarray([v for v in val if np.isfinite(v)])
        if len(finite) >= 5:  # the last 25 nats; a run of a few epochs shows its points
            top = max(finite.max(), PUBLISHED.get(r["key"], finite.max())) + 2
            ax.set_ylim(top - 25, top)
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats")
        ax.set_title(f"{r['key'][0]}, {r['key'][1]} prior ({r['epochs']} epochs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(FLAGS.out + ".png", dpi=110)
    print("\n".join(lines))
    print(f"figure: {FLAGS.out}.png")


if __name__ == "__main__":
    app.run(main)
