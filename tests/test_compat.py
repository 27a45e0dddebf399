"""Workdirs written by older tfvae versions keep working: ``tests/fixtures/workdir_v0_1`` was
written by tfvae 0.1 (flat config fields, a VampPrior, one epoch trained, its best checkpoint
and its Keras backup) and must still evaluate, sample and resume through the commands."""
import json
import os
import shutil
import subprocess

import pytest

from commands import command, run_together
from conftest import REPO, TFDS_DIR, _require
from tfvae import config as config_lib
from tfvae.training import runstate

FIXTURE = os.path.join(REPO, "tests", "fixtures", "workdir_v0_1")
VAL_ELBO = -530.8109130859375  # the fixture's best validation ELBO (its metrics.csv, epoch 0)


def test_old_config_is_translated_field_by_field():
    with open(os.path.join(FIXTURE, "config.json")) as f:
        old = json.load(f)
    new = config_lib.upgrade(old)
    m = new["model"]
    assert m["prior"] == {"name": "vamp", "components": 5, "init": "data",
                          "pseudo_inputs": "sigmoid", "learn_weights": False, "hidden": [64, 64],
                          "flow_layers": 4, "activation": "relu"}
    assert m["posterior"]["name"] == "gaussian" and m["posterior"]["scale"] == "hardtanh_logvar"
    assert m["network"]["name"] == "mlp" and m["network"]["hidden"] == [8]
    assert m["likelihood"] == {"name": "bernoulli", "components": 5}
    assert new["estimator"] == {"name": "reparameterized", "control_variates": ""}
    assert "checkpoint_every_epoch" not in new["train"]
    # Every old value lands in a field of today's layout (fields added since take their
    # defaults when read), and nothing of the old layout is left.
    assert not {k for k in m if k.startswith(("prior_", "posterior_", "likelihood_"))}
    today = runstate.config_dict(config_lib.get_config())

    def fields(tree, prefix=""):
        return {prefix + k if not isinstance(v, dict) else f
                for k, v in tree.items()
                for f in ([prefix + k] if not isinstance(v, dict) else fields(v, prefix + k + "."))}
    assert fields(new) <= fields(today), fields(new) - fields(today)
    assert config_lib.upgrade(new) == new  # today's layout passes unchanged


@pytest.fixture
def old_workdir(tmp_path):
    _require(os.path.join(TFDS_DIR, "mnist"))
    workdir = str(tmp_path / "old")
    shutil.copytree(FIXTURE, workdir)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        stored = json.load(f)
    stored["data"]["data_dir"] = TFDS_DIR  # where the data lives here (as a user who moved it)
    with open(path, "w") as f:
        json.dump(stored, f)
    return workdir


def _run(args):
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    return out


@pytest.mark.slow
def test_an_old_workdir_evaluates_samples_and_resumes(old_workdir, tmp_path):
    # Its weights are restored, not left at initial values: the validation ELBO it measures is
    # the one its best checkpoint recorded (same 200 images, same binarisation; one z each).
    png = str(tmp_path / "samples.png")
    evaluated, sampled = run_together(
        [*command("evaluate"), f"--workdir={old_workdir}", "--split=validation",
         "--iw_samples=5", "--seed=0"],
        [*command("sample"), f"--workdir={old_workdir}", f"--out={png}", "--num=4", "--seed=1"])
    for out in (evaluated, sampled):
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr[-3000:]
    assert "best checkpoint (epoch 1)" in evaluated.stderr
    with open(os.path.join(old_workdir, "evaluation.json")) as f:
        result = json.load(f)
    assert result["num_examples"] == 200
    assert result["elbo"]["mean"] == pytest.approx(VAL_ELBO, abs=1.5), result["elbo"]
    assert os.path.getsize(png) > 0

    # Resuming with the workdir alone (its own config) trains the second epoch only.
    with open(os.path.join(old_workdir, "metrics.csv")) as f:
        first_row = f.read().splitlines()[1]
    _run([*command("train"), f"--workdir={old_workdir}", "--config.train.epochs=2",
          "--config.eval.iw_samples=5", "--config.eval.plots=False"])
    with open(os.path.join(old_workdir, "metrics.csv")) as f:
        rows = f.read().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["0", "1"] and rows[0] == first_row
    with open(os.path.join(old_workdir, "run.json")) as f:
        state = json.load(f)
    assert state["config_changes"][-1]["changes"]["train.epochs"] == [1, 2]
    with open(os.path.join(old_workdir, "results.json")) as f:
        results = json.load(f)
    assert results["epochs_trained"] == 2 and results["test"]["elbo"]["mean"] > VAL_ELBO - 20
    with open(os.path.join(old_workdir, "config.json")) as f:
        assert json.load(f)["model"]["prior"]["name"] == "vamp"  # rewritten in today's layout


# ---------------------------------------------------------------------- tfvae 0.3, every kind
FIXTURES_V0_3 = os.path.join(REPO, "tests", "fixtures", "workdirs_v0_3")


def _make_workdirs():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_workdirs", os.path.join(REPO, "tests", "fixtures", "make_workdirs.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(os.listdir(FIXTURES_V0_3)))
def test_a_workdir_of_every_kind_written_by_0_3_evaluates_samples_and_resumes(
        kind, tmp_path, fashion_idx_dir):
    """``tests/fixtures/workdirs_v0_3`` (tests/fixtures/make_workdirs.py, run by tfvae 0.3
    before the node-based redesign): each kind's best weights give the same ELBO, IS bound
    and seeded sample as when written, it samples a PNG, and it resumes for a second epoch."""
    from tfvae.training import runs, train
    from tfvae.cli import sample
    make = _make_workdirs()
    workdir = str(tmp_path / kind)
    shutil.copytree(os.path.join(FIXTURES_V0_3, kind), workdir)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        stored = json.load(f)
    assert stored["tfvae_version"] == "0.3.0"
    stored["data"]["idx_dir"] = fashion_idx_dir  # where the data lives here
    with open(path, "w") as f:
        json.dump(stored, f)
    with open(os.path.join(workdir, "expected.json")) as f:
        want = json.load(f)
    got = make.expected(workdir)
    for key in ("elbo", "log_likelihood", "sample_mean"):
        if want[key] is None:  # a conditional model's ELBO needs its labels: not stored
            assert got[key] is None
        else:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-5), (kind, key)
    assert "best checkpoint (epoch 1)" in runs.open_run(workdir, warn=lambda m: None).source
    out = str(tmp_path / "samples.png")
    sample.run(out, workdir=workdir, num=4, seed=1, say=lambda m: None)
    assert os.path.getsize(out) > 0
    config = runstate.read_config(path)
    config.train.epochs = 2
    results = train.train_and_evaluate(config, workdir, verbose=0)
    assert results["epochs_trained"] == 2
    import numpy as np
    assert np.isfinite(results["test"]["elbo"]["mean"])
