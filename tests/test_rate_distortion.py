"""scripts/experiments/rate_distortion.py: a beta sweep lands where the rate-distortion trade-off says."""
import os
import subprocess

import pytest
import sys

from conftest import REPO


@pytest.mark.slow
def test_beta_sweep_trades_rate_for_distortion(tmp_path, fashion_idx_dir):
    workdir = tmp_path / "rd"
    cmd = [sys.executable, os.path.join(REPO, "scripts", "experiments", "rate_distortion.py"),
           f"--config={os.path.join(REPO, 'configs', 'default.py')}", f"--workdir={workdir}",
           "--config.data.source=idx", f"--config.data.idx_dir={fashion_idx_dir}",
           "--config.data.test_size=300", "--config.data.train_size=1024",
           "--config.train.epochs=2", "--config.eval.iw_samples=5", "--config.eval.iw_examples=50",
           "--config.model.latent_dims=8,", "--config.eval.plots=False", "--betas=0.1,10",
           "--priors=standard_normal"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("|") for line in (workdir / "rate_distortion.md").read_text().splitlines()[2:]]
    (low_beta, high_beta) = [(float(r[3]), float(r[4])) for r in rows]  # (R, D)
    assert low_beta[0] > 2 * high_beta[0]          # a small beta buys rate ...
    assert low_beta[1] < high_beta[1]              # ... and spends it on lower distortion
    assert (workdir / "rate_distortion.png").stat().st_size > 10000
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # reuses the runs
    assert again.returncode == 0 and "training into" not in again.stdout
