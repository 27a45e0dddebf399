"""Structure without annotation from the command line (`configs/structure.py`,
`tfvae.results.structure`): every DATA,OBJECTIVE config validates, a bad one is refused in one
line, and a dSprites run and a mixture-prior MNIST run report their metrics."""
import json
import os
import subprocess

import numpy as np
import pytest

from commands import command
from conftest import REPO, TFDS_DIR
from tfvae.config import from_file
from tfvae.errors import ConfigError
from tfvae.training import validation

STRUCTURE = os.path.join(REPO, "configs", "structure.py")


def _configs():
    import importlib.util
    spec = importlib.util.spec_from_file_location("structure_configs", STRUCTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


structure_configs = _configs()


@pytest.mark.parametrize("data", structure_configs.DATA)
def test_every_objective_config_validates(data):
    for objective in structure_configs.OBJECTIVES:
        config = from_file(STRUCTURE, f"{data},{objective}")
        validation.validate(config)
    with pytest.raises(ConfigError, match="expected DATA,OBJECTIVE"):
        structure_configs.get_config(f"{data},gmvae_magic")


TINY = ["--config.data.train_size=640", "--config.train.epochs=1",
        "--config.data.test_size=200", "--config.data.validation_size=200",
        "--config.model.network.conv_channels=(8,8)", "--config.model.network.hidden=(32,)",
        "--config.model.latent_dims=(4,)", "--config.eval.iw_samples=2",
        "--config.eval.iw_examples=50", "--config.eval.structure_points=300",
        "--config.eval.factor_vae_votes=10", "--config.eval.plots=False"]


@pytest.mark.slow
def test_a_dsprites_run_reports_the_factor_metrics(tmp_path):
    workdir = str(tmp_path / "ds")
    out = subprocess.run(command("train") + [
        f"--config={STRUCTURE}:dsprites,beta_tcvae", f"--workdir={workdir}"] + TINY,
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.load(open(os.path.join(workdir, "results.json")))
    for key in ("mig", "mig_sampled", "dci_disentanglement", "dci_completeness",
                "dci_informativeness", "sap", "factor_vae_score"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["structure_protocol"]["points"] == 300
    assert "mig " in out.stdout and "factor_vae_score" in out.stdout
    ev = subprocess.run(command("evaluate") + [f"--workdir={workdir}", "--iw_samples=2",
                                               "--examples=50"],
                        capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert "dci_disentanglement" in ev.stdout
    evaluation = json.load(open(os.path.join(workdir, "evaluation.json")))
    assert evaluation["mig"] == pytest.approx(results["mig"], abs=0.2)


@pytest.mark.slow
def test_a_mixture_prior_on_mnist_reports_its_clusters(tmp_path, mnist_arrays):
    """The 10 components of an unannotated mixture prior, after one epoch on 12,000 images,
    already sort MNIST's classes well above chance (0.1 for ten equal classes)."""
    from tfvae.training import train
    config = from_file(STRUCTURE, "mnist,elbo")
    config.data.data_dir, config.data.download = TFDS_DIR, False
    config.data.train_size, config.train.epochs = 12000, 1
    config.eval.iw_samples, config.eval.iw_examples, config.eval.plots = 2, 100, False
    results = train.train_and_evaluate(config, str(tmp_path / "mnist"), verbose=0)
    assert 0.2 < results["cluster_accuracy"] <= 1.0 and 0.1 < results["nmi"] <= 1.0
    assert results["clusters_used"] >= 2
    np.testing.assert_(results["structure_time_s"] < 60)
