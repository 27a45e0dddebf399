"""The command line: every bad input is one line naming the problem and the fix, never a
traceback; no CUDA noise on a machine without a GPU; offline data errors come in seconds."""
import csv
import io
import os
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest
import tensorflow as tf

from commands import command
from conftest import REPO
from tfvae import data, progress
from tfvae.results import evaluation, plots
from tfvae.errors import DataError

BAD_INPUTS = [
    (["--config=configs/nope.py"],
     "--config=configs/nope.py: no such config file; give the path of a config file "
     "(in configs/: default.py, discrete.py, fashion_mnist_conv64.py, literature.py, "
     "mnist_dynamic.py, "
     "priors.py, semi_supervised.py, structure.py)"),
    (["--config.train.epoch=1"],
     "--config.train.epoch: no field 'epoch' in the config; did you mean epochs?"),
    (["--config=configs/priors.py:mnist,foo"],
     "--config=configs/priors.py:mnist,foo: expected DATASET,PRIOR with DATASET in mnist, "
     "fashion_mnist and PRIOR in standard_normal, mog, vamp, gtm, gtm_vamp, realnvp"),
    (["--config.model.prior.name=foo"],
     "model.prior.name='foo': unknown prior; valid priors are: bernoulli, categorical, gtm, "
     "gtm_vamp, mog, realnvp, standard_normal, vamp"),
    (["--config.model.foo=1"],
     "--config.model.foo: no field 'foo' in model; model has: classifier_weight, "
     "classifier_weight_per_labelled, cluster_usage_weight, kl, label, label_estimator, label_input, "
     "label_temperature, labelled_bound_weight, latent_dims, likelihood, network, "
     "num_samples, posterior, prior"),
    (["--config.model.conditional=True"],
     "--config.model.conditional: model.conditional is no longer a field: the label node is "
     "one choice, model.label='observed' (or 'none', 'observed', 'latent', 'component')"),
    (["--config.model.prior.annotated=True"],
     "--config.model.prior.annotated: model.prior.annotated is no longer a field: the label "
     "node is one choice, model.label='component' (or 'none', 'observed', 'latent', "
     "'component')"),
    (["--config.nosuch.x=1"],
     "--config.nosuch.x: no block 'nosuch' in the config; the config has: data, estimator, "
     "eval, model, seed, train"),
    (["--config.model.prior=vamp"],
     "--config.model.prior=vamp: model.prior is a block of fields, not a value; set one of them "
     "(e.g. --config.model.prior.name=vamp); model.prior has: activation, "
     "components, flow_layers, hidden, init, learn_weights, name, pseudo_inputs"),
    (["--config.model.prior.componets=3"],
     "--config.model.prior.componets: no field 'componets' in the config; did you mean "
     "components?"),
]


@pytest.mark.slow
def test_bad_input_is_one_line_without_traceback_or_cuda_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user has
    procs = [subprocess.Popen(
        [*command("train"), *args,
         f"--workdir={tmp_path / str(i)}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for i, (args, _) in enumerate(BAD_INPUTS)]
    for proc, (args, message) in zip(procs, BAD_INPUTS):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode != 0, args
        assert err.strip() == f"tfvae-train: error: {message}", (args, err[-2000:])
        assert not out.strip()
    assert not list(tmp_path.iterdir())  # nothing written for a rejected command
    if not os.path.exists("/dev/nvidia0"):
        assert "cuInit" not in err and "cuda" not in err.lower()


@pytest.mark.parametrize("name,says", [
    ("train", ["tfvae-train: train a VAE", "--config.FIELD=VALUE", "--workdir"]),
    ("evaluate", ["tfvae-evaluate: measure a run", "--iw_samples", "importance samples k",
                  "--split", "--seed"]),
    ("sample", ["tfvae-sample: draw a labelled PNG", "--saved_model", "--temperature",
                "--oversample"]),
])
def test_help_says_what_the_command_does_and_its_flags(name, says):
    out = subprocess.run([*command(name), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "Try --helpfull" not in out.stdout
    for text in says:
        assert text in out.stdout, (text, out.stdout)


def test_evaluate_refuses_zero_importance_samples(tmp_path):
    out = subprocess.run([*command("evaluate"), f"--workdir={tmp_path}", "--iw_samples=0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("tfvae-evaluate: error: flag --iw_samples=0")
    assert "not a positive integer" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def _hears_ctrl_c():
    """In the child, before exec: SIGINT's default action, as in a terminal. A shell without
    job control starts background commands (``pytest ... &``) with SIGINT ignored, and the
    child would inherit that; Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_the_same_command_resumes(tmp_path, fashion_idx_dir):
    """Ctrl-C (SIGINT) in the middle of tfvae-train: exit status 130 (128 + SIGINT), no
    traceback, a last line saying what is kept and what to do; doing it resumes the run."""
    workdir = tmp_path / "run"
    args = [*command("train"), "--config=" + os.path.join(REPO, "configs", "default.py"),
            f"--workdir={workdir}", "--config.data.source=idx",
            f"--config.data.idx_dir={fashion_idx_dir}", "--config.data.train_size=512",
            "--config.data.validation_size=128", "--config.data.test_size=128",
            "--config.model.network.hidden=16,", "--config.model.latent_dims=2,",
            "--config.eval.iw_samples=5", "--config.eval.plots=False"]
    proc = subprocess.Popen([*args, "--config.train.epochs=1000"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_hears_ctrl_c)
    metrics = workdir / "metrics.csv"
    deadline = time.time() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3):  # 2 epochs
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, "tfvae-train did not log 2 epochs in time"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "tfvae-train: interrupted; the workdir keeps the run up to its last saved epoch: run "
        "the same command again to resume from there")
    assert not (workdir / "results.json").exists()
    logged = len(metrics.read_text().splitlines()) - 1
    out = subprocess.run([*args, f"--config.train.epochs={logged + 1}"], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    # SIGINT came right after an epoch's row: that epoch is kept, or (when its backup was not
    # yet written) trained again and its row replaced, never logged twice.
    resumed = re.search(r"resuming training at epoch (\d+) of (\d+)", out.stderr)
    assert resumed and int(resumed[1]) in (logged, logged + 1), out.stderr[-3000:]
    with open(metrics) as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == list(range(logged + 1))
    assert (workdir / "results.json").exists()


@pytest.mark.slow
def test_ctrl_c_during_an_evaluation_writes_nothing(tiny_run, tmp_path):
    import shutil
    workdir = tmp_path / "run"
    shutil.copytree(tiny_run, workdir)
    before = sorted(p.name for p in workdir.iterdir())
    proc = subprocess.Popen([*command("evaluate"), f"--workdir={workdir}",
                             "--iw_samples=200000", "--batch_size=1"],  # seconds a call
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_hears_ctrl_c)
    time.sleep(25)  # wherever it is by then (imports, data, importance sampling)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "tfvae-evaluate: interrupted; nothing was written (evaluation.json is written when the "
        "evaluation finishes) and the run is unchanged")
    assert sorted(p.name for p in workdir.iterdir()) == before


def test_offline_download_fails_in_seconds(tmp_path, monkeypatch):
    """Nothing listens on the probed port: the check answers at once, not after TFDS's minutes
    of download retries."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connecting to it is refused
    from tfvae.data import tfds as tfds_source
    monkeypatch.setattr(tfds_source, "_PROBE_HOST", ("127.0.0.1", port))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(var, raising=False)
    start = time.time()
    with pytest.raises(DataError, match=r"'fashion_mnist' is not prepared in .* network is "
                                        r"unreachable .*tfds build fashion_mnist"):
        data.load_tfds("fashion_mnist", str(tmp_path / "tfds"), download=True)
    assert time.time() - start < 30


def test_progress_reports_rate_and_time_left(monkeypatch):
    stream = io.StringIO()
    bar = progress.Progress(400, "log p(x), k=5000", stream=stream, interval=0.0)
    for _ in range(4):
        time.sleep(0.01)
        bar.update(100)
    bar.close()
    lines = stream.getvalue().strip().splitlines()
    assert lines[0].startswith("log p(x), k=5000: 100/400 images, ") and "left" in lines[0]
    assert "images/s" in lines[-1] and lines[-1].startswith("log p(x), k=5000: 400/400 images")


def test_log_likelihood_shows_progress(trained):
    stream = io.StringIO()
    images = trained["splits"].test.unbatch().take(150).batch(50)
    out = evaluation.log_likelihood(trained["model"], images, 10, batch_size=50, progress=stream)
    assert out["iw_examples"] == 150
    assert "log p(x), k=10: 150/150 images" in stream.getvalue()


def test_traversals_sweep_the_range_the_codes_occupy():
    rng = np.random.default_rng(0)
    z = np.stack([rng.normal(5.0, 0.2, 2000), rng.normal(-8.0, 2.0, 2000)], 1)
    values = plots.traversal_values(z, [0, 1])
    assert values.shape == (2, 9)
    assert 4.3 < values[0].min() < values[0].max() < 5.7    # a fixed [-3, 3] misses it entirely
    assert np.all(np.diff(values[1]) > 0) and -14 < values[1].min() < values[1].max() < -2


def test_class_names_come_from_tfds(mnist_arrays):
    from conftest import make_config
    config = make_config()
    assert data.class_names(config.data) == tuple(str(d) for d in range(10))
    config.data.name = "fashion_mnist"
    assert data.class_names(config.data)[:2] == ("T-shirt/top", "Trouser")
    config.data.source = "idx"
    assert data.class_names(config.data) is None
    assert tf.executing_eagerly()


def test_the_scripts_are_the_commands_with_absl_helpfull():
    """scripts/train.py, evaluate.py and sample.py (the design card's absl scripts) run the
    console commands' entry points: --helpfull lists their flags, a bad value is one line."""
    import sys

    from commands import run_together
    from conftest import REPO
    script = lambda name: [sys.executable, os.path.join(REPO, "scripts", f"{name}.py")]  # noqa
    train, evaluate, sample, bad = run_together(
        [*script("train"), "--helpfull"], [*script("evaluate"), "--helpfull"],
        [*script("sample"), "--helpfull"],
        [*script("train"), "--workdir=/tmp/x", "--config.data.pixels=grey"])
    for done, flags in [(train, ("--config", "--workdir")),
                        (evaluate, ("--workdir", "--iw_samples", "--out")),
                        (sample, ("--workdir", "--saved_model", "--out"))]:
        assert done.returncode == 1, done.stderr[-2000:]  # absl's --helpfull exits with 1
        listed = {line.split(":")[0].strip() for line in done.stdout.splitlines()}
        assert set(flags) <= listed, (flags, done.stdout[:2000])
    errors = [line for line in bad.stderr.splitlines() if line.startswith("tfvae-train")]
    assert bad.returncode != 0 and len(errors) == 1 and "data.pixels" in errors[0], bad.stderr


def test_ctrl_c_inside_a_tensorflow_context_manager_is_still_an_interrupt():
    """Ctrl-C inside a TensorFlow device scope surfaces as the scope's RuntimeError with the
    KeyboardInterrupt as its context (seen in a checkpoint save): it is an interrupt, one
    line and status 130; any other error stays what it is."""
    from tfvae import cli

    @cli._interruptible("tfvae-train", "kept")
    def interrupted(argv):
        try:
            raise KeyboardInterrupt
        finally:
            raise RuntimeError("Exiting device scope without proper scope nesting")

    with pytest.raises(SystemExit) as stop:
        interrupted([])
    assert stop.value.code == cli.INTERRUPTED

    @cli._interruptible("tfvae-train", "kept")
    def broken(argv):
        raise RuntimeError("a real fault")

    with pytest.raises(RuntimeError, match="a real fault"):
        broken([])
