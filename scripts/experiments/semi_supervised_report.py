#!/usr/bin/env python3
"""Semi-supervised runs over seeds against the published test error (Kingma et al. 2014).

    python scripts/experiments/semi_supervised_report.py \\
        --runs=M2,100=runs/m2_mnist_100_seed0 --runs=M2,100=runs/m2_mnist_100_seed1 \\
        --runs=M1+M2,100=runs/m1m2_mnist_100_seed0 --out=docs/semi_supervised

Each run (finished or still training) is read from its workdir (``metrics.csv``, ``run.json``
and, once finished, ``results.json``). Writes ``OUT.md``: a row per run (test error once
finished; until then the validation error of the epoch early stopping would restore, the best
validation bound U(x), and the last), then per model and label count the test error's mean +-
sample standard deviation over the finished seeds beside the published one; and ``OUT.png``:
validation error per epoch, a line per seed, the published test error dashed. Nothing is
extrapolated: an unfinished run gives no test number.

References:
    [1] Kingma, Rezende, Mohamed, Welling. Semi-supervised Learning with Deep Generative Models.
        NeurIPS 2014 (Table 1).
"""
import common  # noqa: F401 - first: tfvae importable, TensorFlow quiet
import os
import sys

import numpy as np
from absl import app, flags

from common import mean_sd, write_table  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tfvae.training import runstate  # noqa: E402
from tfvae.results import evaluation

# Test error (%) on MNIST, mean and standard deviation, from [1]'s Table 1 with 100 labels, as
# the issue quotes it and as re-implementations quote it (e.g. tijiang13/Semi-supervised-VAE).
# A variant named "MODEL (what differs)" is held against MODEL's value.
# 600 labels: Table 1's values as the re-implementations' readers know them; the search tools
# could not show the table itself (docs/REPRODUCTION.md says so beside them).
PUBLISHED = {("M2", 100): (11.97, 1.71), ("M1+M2", 100): (3.33, 0.14),
             ("M2", 600): (4.94, 0.13), ("M1+M2", 600): (2.59, 0.05)}


def published(model, labels):
    return PUBLISHED.get((model.split(" (")[0], labels))

flags.DEFINE_multi_string("runs", [], "MODEL,LABELS=WORKDIR (repeat; seeds of one MODEL,LABELS "
                          "are summarised together).")
flags.DEFINE_string("out", "docs/semi_supervised", "Output path without extension.")
flags.DEFINE_string("hardware", "2-core CPU (this project's machine)", "Where the runs ran.")
FLAGS = flags.FLAGS


def read_run(workdir):
    """One run's standing: epochs, hours, validation curves and, once finished, test results."""
    rundir = runstate.RunDir(workdir)
    history, results = rundir.history(), rundir.results()
    if history and "val_classification_error" not in history:
        sys.exit(f"--runs=...={workdir}: not a semi-supervised run (its metrics.csv has no "
                 "val_classification_error); give the workdirs of M2 or M1+M2 runs")
    bound = np.asarray(history.get("val_elbo", []), np.float64)
    error = 100 * np.asarray(history.get("val_classification_error", []), np.float64)
    best = int(np.nanargmax(bound)) if len(bound) else None
    test = None
    if results is not None:
        test = 100 * evaluation.value(results["test"]["classification_error"])
    return {"workdir": workdir, "epochs": len(bound), "error": error, "bound": bound,
            "best": best, "test": test, "stopped": rundir.state().get("stopped"),
            "hours": float(np.nansum(history.get("epoch_time_s", []))) / 3600}


def main(argv):
    del argv
    groups = {}
    for spec in FLAGS.runs:
        key, _, workdir = spec.partition("=")
        model, _, labels = key.partition(",")
        if not (model and labels.isdigit() and workdir):
            sys.exit(f"--runs={spec}: expected MODEL,LABELS=WORKDIR, e.g. "
                     "--runs=M2,100=runs/m2_mnist_100_seed0")
        groups.setdefault((model, int(labels)), []).append(read_run(workdir))
    lines = ["| model | labels | test error (%) | validation error at best U(x) (epoch) | "
             "last validation error | best validation U(x) | epochs | stopped | train time | "
             "workdir |", "|" + " --- |" * 10]
    for (model, labels), runs in groups.items():
        for r in runs:
            if not r["epochs"]:
                lines.append(f"| {model} | {labels} | not started | - | - | - | 0 | - | - | "
                             f"`{r['workdir']}` |")
                continue
            test = f"{r['test']:.2f}" if r["test"] is not None else "not yet (training)"
            lines.append(
                f"| {model} | {labels} | {test} | {r['error'][r['best']]:.2f} ({r['best'] + 1}) "
                f"| {r['error'][-1]:.2f} | {r['bound'][r['best']]:.2f} | {r['epochs']} | "
                f"{r['stopped'] or 'still training'} | {r['hours']:.2f} h | `{r['workdir']}` |")
    lines += ["", "| model | labels | published test error (%) [1] | tfvae test error (%), "
              "mean +- sd | seeds finished | train time per seed |", "|" + " --- |" * 6]
    for (model, labels), runs in groups.items():
        paper = published(model, labels)
        paper = f"{paper[0]:.2f} +- {paper[1]:.2f}" if paper else "-"
        finished = [r["test"] for r in runs if r["test"] is not None]
        if finished:
            mean, sd = mean_sd(finished)
            ours = f"{mean:.2f} +- {sd:.2f}" if len(finished) > 1 else f"{mean:.2f} (one seed)"
        else:
            ours = "not yet (training)"
        hours = np.mean([r["hours"] for r in runs])
        lines.append(f"| {model} | {labels} | {paper} | {ours} | {len(finished)} of "
                     f"{len(runs)} | {hours:.2f} h, {FLAGS.hardware} |")
    write_table(os.path.dirname(FLAGS.out) or ".", os.path.basename(FLAGS.out) + ".md", lines)

    fig, axes = plt.subplots(1, max(1, len(groups)), figsize=(5.2 * max(1, len(groups)), 3.8),
                             squeeze=False)
    for ax, ((model, labels), runs) in zip(axes[0], groups.items()):
        for r in runs:
            ax.plot(np.arange(1, r["epochs"] + 1), r["error"], lw=1,
                    label=os.path.basename(r["workdir"].rstrip("/")))
            if r["test"] is not None:
                ax.plot([r["best"] + 1], [r["test"]], "o", ms=4, color="tab:red")
        if published(model, labels):
            p = published(model, labels)[0]
            ax.axhline(p, color="k", ls="--", lw=1, label=f"published test error {p:.2f}%")
        ax.set_xlabel("epoch")
        ax.set_ylabel("validation error (%)")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{model}, {labels} labels")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(FLAGS.out + ".png", dpi=110)
    print(f"figure: {FLAGS.out}.png")


if __name__ == "__main__":
    app.run(main)
