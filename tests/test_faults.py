"""Faults and bad data: combinations of parts that used to crash mid-training, data that must be
refused at the source, workdirs that cannot be read, a full disk, two processes on one
workdir. Each ends in one line that names the problem and the fix, and loses nothing saved."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from conftest import make_config
from tfvae import builder, train

tfd = tfp.distributions


def tiny_config(fashion_idx_dir, **overrides):
    """A run of seconds on the FashionMNIST sample: 512 training images, latent 4."""
    base = dict(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=200,
                data__validation_size=200, data__train_size=512, data__pixels="binary",
                model__latent_dims=(4,), model__network__hidden=(32,), train__epochs=1,
                eval__iw_samples=5, eval__iw_examples=50, eval__plots=False)
    return make_config(**{**base, **overrides})


# ---------------------------------------------------------------------- parts that crashed
@pytest.mark.parametrize("posterior", ["iaf", "realnvp"])
def test_a_vampprior_of_flow_posteriors_is_the_mixture_of_its_components(posterior):
    """p(z) = 1/K sum_k q(z | u_k) with q a flow: the prior's log-density equals the mixture
    computed component by component (each pseudo-input encoded alone), for z with sample and
    batch axes; before, TFP's mixture handed the flow z[..., None, :] against K contexts and
    the first training step failed with a shape error."""
    config = make_config(model__prior__name="vamp", model__prior__components=3,
                         model__posterior__name=posterior, model__latent_dims=(4,),
                         model__network__hidden=(16,))
    vae = builder.build(config, (28, 28, 1))
    z = tf.random.stateless_normal([2, 5, 4], seed=[1, 2])
    got = vae.prior.log_prob(z).numpy()
    u = vae.prior.pseudo_inputs()
    per_component = np.stack([
        vae.posterior_head.distribution(vae.encoder(u[k:k + 1])).log_prob(z[..., None, :])[..., 0]
        for k in range(3)], -1)
    want = tf.reduce_logsumexp(per_component, -1).numpy() - np.log(3.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert got.shape == (2, 5)


@pytest.mark.parametrize("overrides", [
    {"model__prior__name": "vamp", "model__prior__components": 5, "model__posterior__name": "iaf"},
    {"model__prior__name": "mog", "model__prior__components": 10,
     "model__prior__annotated": True, "data__labels": "10"}],
    ids=["vamp_iaf", "annotated_with_validation"])
def test_combinations_that_crashed_mid_training_train_and_evaluate(tmp_path, fashion_idx_dir,
                                                                     overrides):
    """A VampPrior over an IAF posterior, and an annotated mixture with a validation split
    (whose test step had no labels), train an epoch and evaluate."""
    results = train.train_and_evaluate(tiny_config(fashion_idx_dir, **overrides),
                                       str(tmp_path / "run"), verbose=0)
    assert np.isfinite(results["test"]["elbo"]["mean"])
    assert np.isfinite(results["validation"]["elbo"]["mean"])
    if "data__labels" in overrides:
        assert 0.0 <= results["validation"]["classification_error"]["mean"] <= 1.0


# ---------------------------------------------------------------------- a generated battery
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tfvae.errors import (CheckpointError, ConfigError, DataError, DiskFullError,  # noqa: E402
                          WorkdirError)

ONE_LINE_ERRORS = (ConfigError, DataError, CheckpointError, WorkdirError, DiskFullError)
BATTERY = settings(max_examples=int(os.environ.get("TFVAE_BATTERY", 40)), deadline=None, derandomize=not os.environ.get("TFVAE_BATTERY"), database=None,
                   suppress_health_check=list(HealthCheck))


def _one_line(err):
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def _leaves():
    from tfvae.config import get_config
    from tfvae.runstate import _flatten, config_dict
    flat = _flatten(config_dict(get_config()))
    return sorted(k for k in flat if not k.startswith("train.groups.") and k not in (
        "seed", "data.source", "data.idx_dir", "data.data_dir", "data.path", "data.features",
        "train.strategy", "train.devices", "train.tpu", "data.download"))


def _bad_values(default):
    """Values a user might type by mistake for a field whose default is ``default``."""
    if isinstance(default, bool):
        return st.sampled_from(["yes", 2, None])
    if isinstance(default, (int, float)):
        return st.one_of(st.sampled_from([float("nan"), float("inf"), -float("inf"), -1, -1e9,
                                          0, 1e12, 10 ** 12, 10 ** 6, "ten"]),
                         st.integers(-10 ** 6, -1))
    if isinstance(default, str):
        return st.sampled_from(["no-such-name", "", " ", "Ünïcode", "42"])
    if isinstance(default, list):
        return st.sampled_from([[], [0], [-3], [float("nan")], "1,2", [1e12], [10 ** 12],
                                [10 ** 5]])
    return st.none()


@st.composite
def _bad_field(draw):
    from tfvae.config import get_config
    from tfvae.runstate import _flatten, config_dict
    key = draw(st.sampled_from(_leaves()))
    return key, draw(_bad_values(_flatten(config_dict(get_config()))[key]))


@BATTERY
@given(change=_bad_field())
def test_a_drawn_config_value_is_refused_in_one_line_or_builds(fashion_idx_dir, change):
    """Any value in any field: `config.validate` (which tfvae-train calls before reading data)
    and the model builder either refuse it with a one-line `ConfigError`, or the model builds
    and takes a finite training step. A value that a Keras layer or TFP rejects with its own
    exception is a value tfvae failed to check."""
    import ml_collections
    import tf_keras as keras

    from tfvae import config as config_lib
    from tfvae import runstate
    key, value = change
    stored = runstate.config_dict(tiny_config(fashion_idx_dir))
    node = stored
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    node[last] = value
    try:
        config = ml_collections.ConfigDict(stored)
        config_lib.validate(config)
        model = builder.build(config, (28, 28, 1), 4, train_images=np.zeros((64, 28, 28, 1),
                                                                              np.float32),
                              num_classes=10, num_labelled=100, num_train=512)
    except ONE_LINE_ERRORS as err:
        _one_line(err)
        return
    except TypeError as err:  # ml_collections refuses a value of another type when set
        assert "ConfigDict" in str(err) or "type" in str(err), err
        return
    model.compile(keras.optimizers.Adam(config.train.learning_rate))
    x = tf.cast(tf.random.stateless_uniform([8, 28, 28, 1], seed=[0, 1]) > 0.5, tf.float32)
    batch = (x, tf.zeros([8], tf.int64)) if model.steps_read_labels else x
    try:
        logs = model.train_on_batch(batch, return_dict=True)
    except tf.errors.ResourceExhaustedError as err:  # tfvae-train says it in one line
        _one_line(builder.out_of_memory(err))
        return
    assert np.isfinite(logs["loss"]), (key, value, logs)


def _damage(path, how, draw_fraction):
    """Breaks the file at ``path`` as a crash, an editor or a full disk would."""
    data = open(path, "rb").read() if os.path.isfile(path) else b""
    if how == "zero_bytes":
        open(path, "wb").close()
    elif how == "truncated":
        open(path, "wb").write(data[: int(len(data) * draw_fraction)])
    elif how == "flipped":
        data = bytearray(data)
        start = int(len(data) * draw_fraction)
        for i in range(start, min(start + 16, len(data))):
            data[i] ^= 0xFF
        open(path, "wb").write(bytes(data))
    elif how == "wrong_type":
        open(path, "w").write(["[1, 2]", "3", '"text"', "null"][int(draw_fraction * 4) % 4])
    elif how == "garbage":
        open(path, "wb").write(bytes(range(256)) * 3)
    elif how == "a_folder":
        os.remove(path)
        os.makedirs(path)


WORKDIR_FILES = ["config.json", "run.json", "results.json", "metrics.csv",
                 "checkpoints/best-00001.index", "checkpoints/best-00001.data-00000-of-00001",
                 "backup/chief/checkpoint", "backup/chief/ckpt-2.index",
                 "backup/chief/ckpt-2.data-00000-of-00001"]


@pytest.mark.slow
@settings(BATTERY, max_examples=int(os.environ.get("TFVAE_BATTERY", 24)))
@given(name=st.sampled_from(WORKDIR_FILES),
       how=st.sampled_from(["zero_bytes", "truncated", "flipped", "wrong_type", "garbage",
                            "a_folder"]),
       fraction=st.floats(0.0, 0.99))
def test_a_broken_workdir_file_ends_in_one_line_or_falls_back(tiny_run, name, how, fraction):
    """Any file of a finished workdir broken in any way: reopening it (what tfvae-evaluate and
    tfvae-sample do) and resuming it (tfvae-train's checks, with results.json gone) either work
    (a damaged checkpoint falls back to the one before it) or raise a tfvae error whose message
    is one line. Nothing else: no JSONDecodeError, IndexError or TensorFlow error escapes."""
    import shutil
    import tempfile

    from tfvae import runs, runstate
    workdir = os.path.join(tempfile.mkdtemp(), "run")
    shutil.copytree(tiny_run, workdir)
    assert os.path.exists(os.path.join(workdir, name)), os.listdir(workdir)
    _damage(os.path.join(workdir, name), how, fraction)
    try:
        runs.open_run(workdir, warn=lambda m: None)
    except ONE_LINE_ERRORS as err:
        _one_line(err)
    if name == "results.json":
        return
    if os.path.isdir(os.path.join(workdir, "results.json")):
        return
    os.remove(os.path.join(workdir, "results.json"))
    try:
        config = runstate.read_config(os.path.join(workdir, "config.json"))
        state = train.prepare(config, workdir)
        state.rundir.history(state.epochs_done)
        state.rundir.state()
    except ONE_LINE_ERRORS as err:
        _one_line(err)
    shutil.rmtree(os.path.dirname(workdir))
