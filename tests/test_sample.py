"""tfvae-sample: from a SavedModel alone, seeded, tempered; conditional draws; interpolation."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from commands import command
from tfvae.cli import sample


def test_slerp_keeps_the_norm_and_hits_the_ends():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    path = sample.slerp(a, b, np.linspace(0, 1, 7))
    np.testing.assert_allclose(path[0], a, atol=1e-9)
    np.testing.assert_allclose(path[-1], b, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(path, axis=1), np.linalg.norm(a), rtol=1e-9)


@pytest.mark.slow
def test_sample_from_a_saved_model_without_tfvae_model_code_or_tfp(tiny_run, tmp_path):
    """The sampler needs TensorFlow and the SavedModel only: TFP and tfvae's model code are
    blocked from import in the process that runs it."""
    probe = textwrap.dedent(f"""
        import sys
        for name in ("tensorflow_probability", "tfvae.models.model", "tfvae.distributions.priors", "tfvae.training.train",
                     "tfvae.distributions.posteriors", "tfvae.distributions.likelihoods", "tfvae.inference.estimators"):
            sys.modules[name] = None
        import numpy as np
        from tfvae.cli import sample
        path = {os.path.join(tiny_run, "saved_model")!r}
        a = sample.run({str(tmp_path / "a.png")!r}, saved_model=path, num=12, seed=5)
        b = sample.run({str(tmp_path / "b.png")!r}, saved_model=path, num=12, seed=5)
        c = sample.run({str(tmp_path / "c.png")!r}, saved_model=path, num=12, seed=6)
        d = sample.run({str(tmp_path / "d.png")!r}, saved_model=path, num=3, seed=5,
                       oversample=4)
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        assert a.shape == (3, 4, 28, 28, 1) and d.shape == (3, 4, 28, 28, 1)
        assert set(np.unique(d)) <= {{0.0, 1.0}}      # oversampling draws pixels
        print("OK")
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")
    for name in "abcd":
        assert os.path.getsize(tmp_path / f"{name}.png") > 1000


def test_temperature_scales_the_prior_noise(tiny_run):
    m = tf.saved_model.load(os.path.join(tiny_run, "saved_model"))
    z = {t: m.sample_latents(tf.constant(4000), tf.constant(1, tf.int64),
                             tf.constant(t))["z"].numpy() for t in (1.0, 0.5)}
    assert np.std(z[0.5]) / np.std(z[1.0]) == pytest.approx(0.5, rel=0.03)
    with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be > 0"):
        m.sample_latents(tf.constant(2), tf.constant(1, tf.int64), tf.constant(0.0))


def test_conditional_and_interpolation_from_a_workdir(tiny_run, tmp_path):
    cond = sample.run(str(tmp_path / "c.png"), workdir=tiny_run, mode="conditional", num=5,
                      oversample=3, seed=0)
    assert cond.shape == (5, 4, 28, 28, 1)
    inter = sample.run(str(tmp_path / "i.png"), workdir=tiny_run, mode="interpolate",
                       indices=(2, 4), steps=6, seed=0)
    assert inter.shape == (2, 8, 28, 28, 1)
    np.testing.assert_array_equal(inter[0, 0], cond[2, 0])      # the data image at each end
    np.testing.assert_allclose(inter[0, 1], inter[1, 1], atol=1e-6)  # both paths start at a's code
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([*command("sample"),
                          f"--workdir={tiny_run}", "--mode=interpolate", "--indices=0",
                          f"--out={tmp_path / 'x.png'}"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode != 0
    assert out.stderr.strip() == ("tfvae-sample: error: --indices=0: give two image indices, "
                                  "e.g. --indices=0,5")
