"""Discrete codes trained for real: every estimator on every node type it accepts, DisARM improving
the ELBO on real images, and configs/discrete.py through tfvae-train, tfvae-evaluate,
tfvae-sample and a SavedModel that samples codes and images without tfvae or TFP."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tf_keras as keras

from commands import command
from conftest import REPO, make_config

sys.path.insert(0, os.path.join(REPO, "configs"))
import discrete as discrete_configs  # noqa: E402

from tfvae.errors import ConfigError  # noqa: E402

NODES = {  # small versions of each node type (the enumerable belief network included)
    "bits": dict(latent_dims=(16,), family="bernoulli", classes=2),
    "categories": dict(latent_dims=(12,), family="categorical", classes=4),
    "belief_network": dict(latent_dims=(6, 4), family="bernoulli", classes=2),
}
REFUSED = {("categories", "arm"), ("categories", "disarm"), ("belief_network", "relax"),
           ("bits", "enumerate")}  # 2^16 codes: more than `enumerate` sums over


def _config(node, estimator, fashion_idx_dir):
    c = make_config(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=200,
                    data__validation_size=200, data__train_size=512, data__pixels="binary",
                    data__batch_size=64)
    spec = NODES[node]
    c.model.latent_dims = spec["latent_dims"]
    c.model.network.hidden = (64,)
    c.model.posterior.name = c.model.prior.name = spec["family"]
    c.model.posterior.classes = spec["classes"]
    c.model.num_samples = 2 if estimator in ("rloo", "vimco") else 1
    c.estimator.name = estimator
    return c


@pytest.mark.slow
@pytest.mark.parametrize("node", sorted(NODES))
def test_every_estimator_trains_every_node_type(node, fashion_idx_dir):
    from tfvae import data
    from tfvae.models import builder
    for estimator in discrete_configs.ESTIMATOR_NAMES:
        c = _config(node, estimator, fashion_idx_dir)
        splits = data.load(c.data, seed=0)
        if (node, estimator) in REFUSED:
            with pytest.raises(ConfigError) as err:
                builder.build(c, splits.image_shape, splits.steps_per_epoch)
            assert "\n" not in str(err.value)
            continue
        keras.utils.set_random_seed(0)
        vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
        vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=8)
        history = vae.fit(splits.train, epochs=1, verbose=0).history
        assert np.isfinite(history["loss"][-1]) and np.isfinite(history["elbo"][-1]), estimator
        assert all(n.family == NODES[node]["family"] for n in vae.nodes)


@pytest.mark.slow
def test_disarm_improves_the_elbo_on_real_images(fashion_idx_dir):
    from tfvae import data
    from tfvae.models import builder
    c = _config("bits", "disarm", fashion_idx_dir)
    c.data.train_size = 0
    c.model.latent_dims = (64,)
    keras.utils.set_random_seed(0)
    splits = data.load(c.data, seed=0)
    vae = builder.build(c, splits.image_shape, splits.steps_per_epoch)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=8)
    before = vae.evaluate(splits.validation, verbose=0, return_dict=True)["elbo"]
    vae.fit(splits.train, epochs=4, verbose=0)
    after = vae.evaluate(splits.validation, verbose=0, return_dict=True)["elbo"]
    assert after > before + 100, (before, after)  # ~ -545 at the start, ~ -250 after


def _cli(name, *args):
    return subprocess.run([*command(name), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_discrete_config_through_the_commands_and_the_saved_model(tmp_path, fashion_idx_dir):
    workdir = str(tmp_path / "bits")
    flags = ["--config=configs/discrete.py:tiny,disarm", f"--workdir={workdir}",
             "--config.data.source=idx", f"--config.data.idx_dir={fashion_idx_dir}",
             "--config.data.test_size=300", "--config.data.validation_size=300",
             "--config.data.validation_split=random", "--config.train.epochs=2",
             "--config.eval.iw_samples=100", "--config.eval.iw_examples=100"]
    done = _cli("train", *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    test = results["test"] if "test" in results else results
    exact = test["log_likelihood_exact"]
    assert exact["codes"] == 256 and exact["mean"] >= test["log_likelihood"]["mean"] - 1e-3
    assert any("bernoulli" in n for n in test["nodes"])
    done = _cli("evaluate", f"--workdir={workdir}", "--iw_samples=50", "--examples=50",
                "--seed=1")
    assert done.returncode == 0 and "log p(x) exact (256 codes)" in done.stdout, done.stderr[-2000:]
    done = _cli("sample", f"--saved_model={workdir}/saved_model", f"--out={tmp_path}/s.png")
    assert done.returncode == 0 and os.path.getsize(tmp_path / "s.png") > 0, done.stderr[-2000:]
    refused = _cli("train", "--config=configs/discrete.py:categorical,disarm",
                   f"--workdir={tmp_path}/refused", *flags[2:])
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("tfvae-train")]
    assert len(errors) == 1 and "binary codes" in errors[0], refused.stderr
    probe = textwrap.dedent(f"""
        import os, sys
        sys.modules["tfvae"] = None; sys.modules["tensorflow_probability"] = None
        sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "tfvae"))]
        import numpy as np, tensorflow as tf
        m = tf.saved_model.load({os.path.join(workdir, "saved_model")!r})
        codes = m.sample_latents(tf.constant(50), tf.constant(3, tf.int64), tf.constant(1.0))
        codes = codes[list(codes)[0]].numpy() if isinstance(codes, dict) else codes.numpy()
        images = m.sample(tf.constant(5))["images"].numpy()
        print(codes.shape, sorted(set(np.unique(codes).tolist())), images.shape,
              float(images.min()) >= 0.0, float(images.max()) <= 1.0)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "(50, 8) [0.0, 1.0] (5, 28, 28, 1) True True"
