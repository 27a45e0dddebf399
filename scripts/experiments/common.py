"""What the experiment scripts share, written once: importing it first makes tfvae importable
from a checkout (the repository's root on ``sys.path``) and quiets TensorFlow's start-up
before it loads (`tfvae.cli.quiet_tensorflow`: no CUDA noise on a machine without a GPU); it
gives the seed tables (`mean_sd`, `write_table`) and the ``--config`` flag every study takes
(`config_flag`).

    import common  # first, before TensorFlow or tfvae
    from common import config_flag, mean_sd, write_table
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from tfvae.cli import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

import numpy as np  # noqa: E402


def config_flag(help_text: str, default=None) -> None:
    """Defines ``--config`` (a configs/*.py file, ``--config.FIELD=VALUE`` overrides allowed)."""
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", default, help_text, lock_config=False)


def mean_sd(values):
    """Per column of ``values`` ([seeds, columns]): the mean and the sample standard deviation
    (ddof = 1; zero for a single seed, where there is no spread to estimate)."""
    v = np.asarray(values, np.float64)
    sd = v.std(0, ddof=1) if len(v) > 1 else np.zeros(v.shape[1:])
    return v.mean(0), sd


def write_table(workdir, filename, lines):
    """Writes ``lines`` to WORKDIR/FILENAME, prints them and returns the path."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, filename)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return path


def finished_rows(workdir, row, seeds, values):
    """``values(results)`` of each seed's finished run WORKDIR/{row}_seed{seed} (its
    ``results.json``), for the seeds that finished."""
    import json
    found = []
    for seed in seeds:
        path = os.path.join(workdir, f"{row}_seed{seed}", "results.json")
        if os.path.exists(path):
            with open(path) as f:
                found.append(values(json.load(f)))
    return found


def run_rows(workdir, filename, rows, seeds, config_of, table, report_only=False):
    """Trains every (row, seed) whose run WORKDIR/{row}_seed{seed} has not finished (from
    ``config_of(row, seed)``; an interrupted one resumes), seeds outermost, rewriting the table
    ``table(rows, seeds)`` after each; then writes it once more."""
    if not report_only:
        from tfvae.training import train
        for seed in seeds:
            for row in rows:
                run = os.path.join(workdir, f"{row}_seed{seed}")
                if not os.path.exists(os.path.join(run, "results.json")):
                    train.train_and_evaluate(config_of(row, seed), run, verbose=2)
                write_table(workdir, filename, table(rows, seeds))
    return write_table(workdir, filename, table(rows, seeds))
