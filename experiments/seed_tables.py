"""What the experiments share: mean +- standard deviation over seeds, and a markdown table
written beside the runs it summarises."""
import os

import numpy as np


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
