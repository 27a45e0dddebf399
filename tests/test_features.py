"""M1+M2 (Kingma et al. 2014): a run's data may be another run's features (``data.features``),
the codes of a trained VAE (M1) for the same images (draws from q(z|x) in training, means in
evaluation, collapsed dimensions dropped, as the authors' code does); M2 learns on them with a
Gaussian p(features | y, z)."""
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from commands import command, run_together
from conftest import REPO
from tfvae import config as config_lib
from tfvae import data as data_lib
from tfvae.training import runs, runstate
from tfvae.errors import ConfigError, WorkdirError

CONFIG = os.path.join(REPO, "configs", "semi_supervised.py")


def _small(fashion_idx_dir, latent=6):
    return ["--config.data.source=idx", f"--config.data.idx_dir={fashion_idx_dir}",
            "--config.data.test_size=300", "--config.data.validation_size=300",
            "--config.data.train_size=1200", "--config.eval.iw_samples=5",
            "--config.eval.iw_examples=50", "--config.model.network.hidden=32,",
            f"--config.model.latent_dims={latent},"]


@pytest.fixture(scope="module")
def m1_workdir(tmp_path_factory, fashion_idx_dir):
    """A small M1 (`configs/semi_supervised.py:fashion_mnist,m1`) trained for 2 epochs."""
    workdir = str(tmp_path_factory.mktemp("features") / "m1")
    out = subprocess.run([*command("train"), f"--config={CONFIG}:fashion_mnist,m1",
                          f"--workdir={workdir}", *_small(fashion_idx_dir),
                          "--config.train.epochs=2"], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


@pytest.mark.slow
def test_m1_m2_trains_evaluates_and_exports_from_the_commands(m1_workdir, fashion_idx_dir,
                                                               tmp_path):
    workdir = str(tmp_path / "m1m2")
    out = subprocess.run([*command("train"), f"--config={CONFIG}:fashion_mnist,100,m1={m1_workdir}",
                          f"--workdir={workdir}", *_small(fashion_idx_dir, latent=4),
                          "--config.train.epochs=5", "--config.train.learning_rate=3e-3",
                          # 100 x the paper's weight of the labels: 60 steps must learn here
                          # (at the paper's, the classifier is still at chance after them).
                          "--config.model.classifier_weight=10"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    test = json.load(open(os.path.join(workdir, "results.json")))["test"]
    # Above chance (90% error) by more than 2.5 standard errors (se 2.4% on 300 images);
    # measured 80%: a logistic regression on 2-epoch M1 features with the same 100 labels
    # errs 69%, M1+M2 itself 66% after 20 epochs.
    assert test["classification_error"]["mean"] < 0.84, test["classification_error"]
    # Features are not pictures: the latent space and the curves, no image grids.
    assert os.path.exists(os.path.join(workdir, "curves.png"))
    assert not os.path.exists(os.path.join(workdir, "samples.png"))
    m = tf.saved_model.load(os.path.join(workdir, "saved_model"))
    config = runstate.read_config(os.path.join(workdir, runstate.CONFIG))
    features = runs.load_data(config)
    d = features.image_shape[-1]
    assert m.classify(tf.zeros([2, 1, 1, d]))["probabilities"].shape == (2, 10)
    evaluated, sampled = run_together(
        [*command("evaluate"), "--workdir", workdir, "--iw_samples=5", "--examples=50"],
        [*command("sample"), "--workdir", workdir, f"--out={tmp_path / 'x.png'}"])
    assert evaluated.returncode == 0 and "classification error" in evaluated.stdout, \
        evaluated.stderr[-2000:]
    assert sampled.returncode == 1 and "models features" in sampled.stderr.strip().splitlines()[-1]

    # The data M2 saw, computed here directly. Kept: the dimensions of M1's posterior means
    # whose standard deviation over the first 1,000 training images is above 0.1.
    m1 = runs.open_run(m1_workdir).model
    images = data_lib.load(config.data, seed=config.seed, with_labels=True)
    means = np.concatenate([m1.encode(data_lib.images_of(b)).mean().numpy()
                            for b in images.train])[:1000]
    keep = np.flatnonzero(means.std(0) > 0.1)
    assert 0 < len(keep) and features.image_shape == (1, 1, len(keep))
    # Test images (fixed-binarised): the means of those dimensions, labels kept.
    (f, y), (x, y_images) = next(iter(features.test)), next(iter(images.test))
    np.testing.assert_array_equal(y.numpy(), y_images.numpy())
    np.testing.assert_allclose(f.numpy()[:, 0, 0, :], m1.encode(x).mean().numpy()[:, keep],
                               rtol=1e-5, atol=1e-5)
    # Training images: draws z ~ q(z|x), so (z - mean) / sd is standard normal (100 x d values:
    # its mean within 4 standard errors of 0, its variance within 20% of 1).
    (f, _), (x, _) = next(iter(features.train)), next(iter(images.train))
    q = m1.encode(x)
    u = (f.numpy()[:, 0, 0, :] - q.mean().numpy()[:, keep]) / q.stddev().numpy()[:, keep]
    assert abs(u.mean()) < 4 / np.sqrt(u.size) and abs(u.var() - 1) < 0.2, (u.mean(), u.var())


@pytest.mark.slow
def test_features_that_cannot_work_fail_in_one_line(m1_workdir, tmp_path, fashion_idx_dir):
    def load(**overrides):
        config = config_lib.from_file(CONFIG, f"fashion_mnist,100,m1={m1_workdir}")
        config.data.source, config.data.idx_dir = "idx", fashion_idx_dir
        config.data.test_size = config.data.validation_size = 300
        for key, value in overrides.items():
            section, field = key.split("__")
            config[section][field] = value
        return runs.load_data(config)

    with pytest.raises(WorkdirError, match=r"data.features=.* holds no run") as err:
        load(data__features=str(tmp_path))
    assert "\n" not in str(err.value)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / runstate.CONFIG).write_text(open(os.path.join(m1_workdir, runstate.CONFIG)).read())
    with pytest.raises(WorkdirError, match="has not finished"):
        load(data__features=str(unfinished))
    with pytest.raises(ConfigError, match="encodes .* images but data gives"):
        load(data__image_size=14)
    out = subprocess.run([*command("train"), f"--config={CONFIG}:fashion_mnist,100,m1={m1_workdir}",
                          f"--workdir={tmp_path / 'w'}", *_small(fashion_idx_dir),
                          "--config.model.likelihood.name=bernoulli"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 1
    assert "use model.likelihood.name='gaussian'" in out.stderr.strip().splitlines()[-1]
    assert not os.path.exists(tmp_path / "w" / runstate.CONFIG)


def _ndict(path, arrays):
    """A file in the authors' ``anglepy.ndict.savez`` format: a .tar.gz of ``arrays.npz``
    (``arr_i``) and ``names.txt`` (line i names ``arr_i``)."""
    import io
    import tarfile
    names = sorted(arrays)
    npz = io.BytesIO()
    np.savez(npz, *[arrays[k] for k in names])
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("arrays.npz", npz.getvalue()),
                           ("names.txt", ("\n".join(names) + "\n").encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.slow
def test_the_authors_m1_weights_become_a_run_that_computes_their_network(fashion_idx_dir,
                                                                         tmp_path):
    """scripts/experiments/m1_authors.py: weights in the authors' format (random here, the authors'
    layout: W [out, in], a log-variance head) become a finished run whose q(z|x) and p(x|z)
    are the authors' formulas (dpkingma/nips14-ssl, VAE_Z_X), computed here in NumPy; a
    mismatched file is refused in one line with nothing written."""
    import sys
    rng = np.random.default_rng(0)
    n_x, h, n_z = 28 * 28, 24, 5

    def g(*shape, sd=0.1):
        return rng.normal(0, sd, shape)

    v = {"w0": g(h, n_x), "b0": g(h, 1), "w1": g(h, h, sd=0.3), "b1": g(h, 1),
         "mean_w": g(n_z, h, sd=0.3), "mean_b": g(n_z, 1), "logvar_w": g(n_z, h, sd=0.3),
         "logvar_b": g(n_z, 1)}
    w = {"w0": g(h, n_z, sd=0.3), "b0": g(h, 1), "w1": g(h, h, sd=0.3), "b1": g(h, 1),
         "out_w": g(n_x, h, sd=0.3), "out_b": g(n_x, 1)}
    _ndict(tmp_path / "v.ndict.tar.gz", v)
    _ndict(tmp_path / "w.ndict.tar.gz", w)
    script = [sys.executable, os.path.join(REPO, "scripts", "experiments", "m1_authors.py"),
              f"--config={CONFIG}:fashion_mnist,m1"] + [
        a for a in _small(fashion_idx_dir) if "network.hidden" not in a and "latent" not in a]
    workdir = tmp_path / "m1"
    out = subprocess.run(script + [f"--weights={tmp_path}", f"--workdir={workdir}"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.load(open(workdir / "results.json"))
    assert (results["epochs_trained"], results["stopped"]) == (0, "imported")
    assert "curves.png" not in results["plots"] and not (workdir / "curves.png").exists()

    run = runs.open_run(str(workdir))  # as M1+M2's data.features opens it
    x = data_lib.images_of(next(iter(run.splits.test))).numpy()[:64]

    def softplus(a):
        return np.logaddexp(a, 0.0)

    flat = x.reshape(len(x), -1).astype(np.float64)
    hq = softplus(softplus(flat @ v["w0"].T + v["b0"].T) @ v["w1"].T + v["b1"].T)
    mean, logvar = hq @ v["mean_w"].T + v["mean_b"].T, hq @ v["logvar_w"].T + v["logvar_b"].T
    q = run.model.encode(tf.constant(x), training=False)
    np.testing.assert_allclose(q.mean().numpy(), mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(q.stddev().numpy(), np.exp(logvar / 2), rtol=1e-4, atol=1e-5)
    hp = softplus(softplus(mean @ w["w0"].T + w["b0"].T) @ w["w1"].T + w["b1"].T)
    logits = hp @ w["out_w"].T + w["out_b"].T
    log_px = (flat * logits - softplus(logits)).sum(-1)  # Bernoulli, summed over pixels
    found = run.model.likelihood(tf.constant(mean, tf.float32)).log_prob(x).numpy()
    np.testing.assert_allclose(found, log_px, rtol=1e-4)

    # p(x|z)'s hidden sizes must mirror q(z|x)'s (tfvae's MLP decoder does)
    _ndict(tmp_path / "w.ndict.tar.gz", dict(w, w0=g(h + 1, n_z), b0=g(h + 1, 1),
                                             w1=g(h, h + 1)))
    bad = subprocess.run(script + [f"--weights={tmp_path}", f"--workdir={tmp_path / 'bad'}"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    assert "reversed" in bad.stderr.strip().splitlines()[-1] and not (tmp_path / "bad").exists()
