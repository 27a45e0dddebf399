"""The training entry point end to end: outputs, export, resume, NaNs, and CLI errors."""
import csv
import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from commands import command, run_together
from conftest import REPO, make_config
from tfvae.training import callbacks, checkpoints, train
from tfvae.inference import estimators
from tfvae.errors import ConfigError, TrainingDivergedError


def _fashion_config(fashion_idx_dir, **overrides):
    settings = dict(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=500,
                    data__validation_size=500, data__train_size=1024, data__pixels="binary",
                    train__epochs=2, eval__iw_samples=20, eval__iw_examples=100)
    return make_config(**(settings | overrides))


def _epochs_logged(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_script_trains_fashion_mnist_and_exports(tmp_path, fashion_idx_dir):
    workdir = str(tmp_path / "run")
    cmd = [*command("train"),
           "--config", os.path.join(REPO, "configs", "default.py"), "--workdir", workdir,
           "--config.data.source=idx", f"--config.data.idx_dir={fashion_idx_dir}",
           "--config.data.test_size=500", "--config.data.train_size=1024",
           "--config.train.epochs=2", "--config.eval.iw_samples=20",
           "--config.eval.iw_examples=100", "--config.model.latent_dims=2,"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "test split, 500 images" in out.stdout and "log p(x) >= (k=20, n=100)" in out.stdout
    results = json.load(open(os.path.join(workdir, "results.json")))
    test = results["test"]
    assert test["num_examples"] == 500 and test["iw_examples"] == 100
    assert test["nodes"] == ["z ~ gaussian | x: reparameterized (path-wise)"]
    assert "nodes: z ~ gaussian | x: reparameterized (path-wise)" in out.stdout
    v = {key: test[key]["mean"] for key in ("elbo", "log_likelihood", "distortion", "rate")}
    assert v["elbo"] < v["log_likelihood"] < 0
    assert v["elbo"] == pytest.approx(-(v["distortion"] + v["rate"]), abs=1e-3)
    assert all(test[key]["se"] > 0 for key in v)  # one schema: standard errors everywhere
    assert _epochs_logged(workdir) == [0, 1]
    assert checkpoints.best_checkpoints(os.path.join(workdir, "checkpoints"))
    for name in ("samples.png", "reconstructions.png", "traversals.png", "latent_density.png",
                 "curves.png", "config.json"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    assert os.listdir(os.path.join(workdir, "tensorboard"))
    # Per-epoch image summaries: samples and reconstructions at every epoch.
    seen = set()
    for path in glob.glob(os.path.join(workdir, "tensorboard", "images", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            seen |= {(value.tag, event.step) for value in event.summary.value}
    assert {("samples", 0), ("samples", 1)} <= seen
    assert {tag for tag, _ in seen} >= {"samples", "reconstructions (data | reconstruction)"}

    # The SavedModel samples, encodes and scores with neither tfvae nor TFP importable.
    probe = textwrap.dedent(f"""
        import os, sys
        sys.modules["tfvae"] = None; sys.modules["tensorflow_probability"] = None
        sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p or ".", "tfvae"))]
        import numpy as np, tensorflow as tf
        m = tf.saved_model.load({os.path.join(workdir, "saved_model")!r})
        s = m.sample(tf.constant(6))["images"].numpy()
        s2 = m.sample(tf.constant(6))["images"].numpy()
        seeded = m.sample(tf.constant(6), tf.constant(7, tf.int64))["images"].numpy()
        assert np.array_equal(seeded, m.sample(tf.constant(6), tf.constant(7, tf.int64))["images"])
        assert not np.array_equal(s, s2)  # each call draws anew
        for bad, call in (("num_samples", lambda: m.log_likelihood(tf.zeros([1, 28, 28, 1]),
                                                                 tf.constant(0))),
                          ("num_images", lambda: m.sample(tf.constant(-1)))):
            try:
                call()
                raise SystemExit(f"{{bad}}: no error")
            except tf.errors.InvalidArgumentError as err:
                assert bad in err.message and ">=" in err.message, err.message
        print("SUMS", float(s.sum()), float(seeded.sum()))
        x = (np.random.default_rng(0).random((3, 28, 28, 1)) < 0.3).astype("float32")
        enc = m.encode(tf.constant(x))
        ll = m.log_likelihood(tf.constant(x), tf.constant(50))["log_likelihood"].numpy()
        d = m.decode(enc["loc"])["mean"].numpy()
        print(s.shape, enc["loc"].shape, ll.shape, d.shape, float(s.min()), float(s.max()),
              bool(np.isfinite(ll).all()))
    """)
    sums = []
    # Two processes (unseeded samples differ, seeded ones agree), and beside them the same
    # training command again: a finished workdir is never overwritten.
    *probes, again = run_together([sys.executable, "-c", probe], [sys.executable, "-c", probe],
                                  cmd, timeout=300, cwd=str(tmp_path))
    for out in probes:
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.split("\n")[-2].startswith("(6, 28, 28, 1) (3, 2) (3,) (3, 28, 28, 1)")
        assert out.stdout.strip().endswith("True")
        sums.append([line for line in out.stdout.splitlines() if line.startswith("SUMS")][0])
    (unseeded_a, seeded_a), (unseeded_b, seeded_b) = [s.split()[1:] for s in sums]
    assert unseeded_a != unseeded_b and seeded_a == seeded_b
    assert again.returncode != 0
    assert "holds a finished run (results.json)" in again.stderr + again.stdout


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(tmp_path, fashion_idx_dir, monkeypatch):
    workdir = str(tmp_path / "run")
    config = _fashion_config(fashion_idx_dir, train__epochs=3)
    original = callbacks.Throughput.on_epoch_end

    def interrupt_after_second_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks.Throughput, "on_epoch_end", interrupt_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, workdir, verbose=0)
    assert _epochs_logged(workdir) == [0]          # epoch 1 was cut before it was logged
    assert os.listdir(os.path.join(workdir, "backup"))
    monkeypatch.setattr(callbacks.Throughput, "on_epoch_end", original)
    results = train.train_and_evaluate(config, workdir, verbose=0)
    assert _epochs_logged(workdir) == [0, 1, 2]    # resumed at epoch 1, not from scratch
    assert results["epochs_trained"] == 3          # the whole run, not the resumed part


class _NaNAfter(estimators.Reparameterized):
    """Returns a NaN loss from step 40 on: a stand-in for a diverging run."""

    def terms(self, model, x, beta=1.0, training=False, update_state=True):
        terms = super().terms(model, x, beta, training, update_state)
        bad = tf.cast(model.optimizer.iterations, tf.float32) >= 40.0
        return terms._replace(loss=tf.where(bad, np.nan, terms.loss))


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_best_checkpoint(
        tmp_path, fashion_idx_dir, monkeypatch):
    monkeypatch.setitem(estimators.ESTIMATORS._items, "nan_after_40", _NaNAfter)
    workdir = str(tmp_path / "run")
    config = _fashion_config(fashion_idx_dir, estimator__name="nan_after_40", train__epochs=10,
                             train__steps_per_execution=1, data__batch_size=32)
    with pytest.raises(TrainingDivergedError, match=r"loss became nan in epoch 2.*best validation "
                                                    r"ELBO are kept.*learning_rate"):
        train.train_and_evaluate(config, workdir, verbose=0)
    assert checkpoints.find_best(os.path.join(workdir, "checkpoints")).epoch == 0
    assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_bad_config_is_rejected_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="train.optimizer='adamw2'.*valid optimizers"):
        train.train_and_evaluate(make_config(train__optimizer="adamw2"), str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")
    out = subprocess.run([*command("train"),
                          "--workdir", str(tmp_path / "w"), "--config.data.pixels=grey"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert "error: data.pixels='grey': unknown pixel mode; valid pixel modes are: binary, continuous, dynamic" in out.stderr
    assert "Traceback" not in out.stderr
