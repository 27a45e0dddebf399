"""Chen et al. (2018)'s dSprites comparison sized to a CPU: beta-VAE, beta-TCVAE and FactorVAE
with their MLP (4096-1200-1200 and mirrored, 10 latents), each ``configs/structure.py:dsprites,
OBJECTIVE`` at its paper's weight, over several seeds, and the disentanglement metrics of each
(both MIG protocols, DCI, SAP, the FactorVAE score). Resumable: run it again to continue.

    python scripts/experiments/dsprites_mig.py --workdir=runs/dsprites --seeds=0,1,2 \\
      --train_size=200000 --epochs=1

What is cut from the paper's protocol (batch 2048, Adam 1e-3, the full 737,280 images for many
epochs): batch 128 and Adam 5e-4 (more steps for the images seen), ``--train_size`` images for
``--epochs`` passes. Writes WORKDIR/dsprites_table.md (mean +- sd over the seeds that finished).
"""
import os

import common  # noqa: F401  (first: tfvae importable, TensorFlow quiet)
from common import finished_rows, mean_sd, run_rows  # noqa: E402
from absl import app, flags

flags.DEFINE_string("workdir", None, "Where the runs and the table go.")
flags.DEFINE_list("objectives", ["beta_vae", "beta_tcvae", "factor_vae"], "Rows of the table.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_integer("train_size", 200000, "Training images drawn from the factor grid.")
flags.DEFINE_integer("epochs", 1, "Passes over them.")
flags.DEFINE_bool("report_only", False, "Only write the table from the finished runs.")
flags.mark_flag_as_required("workdir")
FLAGS = flags.FLAGS
HERE = os.path.dirname(os.path.abspath(__file__))
METRICS = ("mig", "mig_sampled", "dci_disentanglement", "dci_completeness", "sap",
           "factor_vae_score")


def config_of(objective: str, seed: int):
    from tfvae.config import from_file
    config = from_file(os.path.join(HERE, "..", "..", "configs", "structure.py"),
                       f"dsprites,{objective}")
    config.seed = seed
    config.model.network.name, config.model.network.hidden = "mlp", (1200, 1200)  # Chen's MLP
    config.data.batch_size, config.train.learning_rate = 128, 5e-4
    config.data.train_size, config.train.epochs = FLAGS.train_size, FLAGS.epochs
    config.eval.iw_samples, config.eval.iw_examples = 10, 500
    return config


def table(objectives, seeds):
    lines = [f"dSprites (drawn from its factors), Chen et al.'s MLP, {FLAGS.train_size} images x "
             f"{FLAGS.epochs}, batch 128, Adam 5e-4; metrics on the codes of 10,000 images; "
             "mean +- sd over the seeds", "",
             "| objective | seeds | MIG (disentanglement_lib) | MIG (Chen et al., shape left out) "
             "| DCI disentanglement | DCI completeness | SAP | FactorVAE score | test ELBO |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for objective in objectives:
        found = finished_rows(FLAGS.workdir, objective, seeds, lambda r: [
            r[m] for m in METRICS] + [r["test"]["elbo"]["mean"]])
        if not found:
            lines.append(f"| {objective} | 0 |" + " |" * (len(METRICS) + 1))
            continue
        mean, sd = mean_sd(found)
        cells = [f"{m:.3f} +- {s:.3f}" for m, s in zip(mean[:-1], sd[:-1])]
        cells.append(f"{mean[-1]:.2f} +- {sd[-1]:.2f}")
        lines.append(f"| {objective} | {len(found)} | " + " | ".join(cells) + " |")
    return lines


def main(argv):
    del argv
    run_rows(FLAGS.workdir, "dsprites_table.md", FLAGS.objectives,
             [int(s) for s in FLAGS.seeds], config_of, table, FLAGS.report_only)


if __name__ == "__main__":
    app.run(main)
