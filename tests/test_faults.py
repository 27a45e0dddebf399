"""Faults and bad data: combinations of parts that used to crash mid-training, data that must be
refused at the source, workdirs that cannot be read, a full disk, two processes on one
workdir. Each ends in one line that names the problem and the fix, and loses nothing saved."""
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from conftest import make_config
from tfvae.training import validation
from tfvae.models import builder
from tfvae.training import train

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
     "model__label": "component", "data__labels": "10"}],
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
# TFVAE_BATTERY=N draws N fresh examples per battery; unset (CI), a fixed derandomised draw.
BATTERY = settings(max_examples=int(os.environ.get("TFVAE_BATTERY", 40)), deadline=None,
                   derandomize=not os.environ.get("TFVAE_BATTERY"), database=None,
                   suppress_health_check=list(HealthCheck))


def _one_line(err):
    text = str(err)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


def _leaves():
    from tfvae.config import get_config
    from tfvae.training.runstate import _flatten, config_dict
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
    from tfvae.training.runstate import _flatten, config_dict
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

    from tfvae.training import runstate
    key, value = change
    stored = runstate.config_dict(tiny_config(fashion_idx_dir))
    node = stored
    *path, last = key.split(".")
    for part in path:
        node = node[part]
    node[last] = value
    try:
        config = ml_collections.ConfigDict(stored)
        validation.validate(config)
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

    from tfvae.training import runs, runstate
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


# ---------------------------------------------------------------------- a full disk
def _no_space(path):
    import errno
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


def _fill_disk_at(monkeypatch, where, epoch):
    """Makes one writer of the run meet a full disk: ``epoch``'s row of metrics.csv (Python's
    OSError ENOSPC, after half the file is written), its training backup or its best
    checkpoint (TensorFlow's errors, as its file system reports them), or the SavedModel."""
    import contextlib

    from tensorflow.python.checkpoint import checkpoint_management

    from tfvae import storage
    from tfvae.training import checkpoints
    from tfvae.results import export
    if where == "metrics":
        atomic_file = storage.atomic_file

        rows = []

        @contextlib.contextmanager
        def full(path, *args, **kwargs):
            with atomic_file(path, *args, **kwargs) as f:
                yield f  # the whole file, up to this epoch's row, is in the temporary file
                if path.endswith("metrics.csv"):
                    rows.append(path)
                    if len(rows) == epoch + 1:
                        raise _no_space(path)
        monkeypatch.setattr(storage, "atomic_file", full)
    elif where == "backup":
        save = checkpoint_management.CheckpointManager.save

        def full(self, checkpoint_number=None, **kwargs):
            if checkpoint_number == epoch + 1:
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"{self.directory}/ckpt-{epoch + 1}_temp/part-00000-of-00001."
                    "data-00000-of-00001.tempstate1; No space left on device")
            return save(self, checkpoint_number=checkpoint_number, **kwargs)
        monkeypatch.setattr(checkpoint_management.CheckpointManager, "save", full)
    elif where == "best":
        write_best = checkpoints.write_best

        def full(directory, model, e, value):
            if int(e.numpy()) == epoch:
                raise tf.errors.UnknownError(None, None, f"{directory}/best-{epoch:05d}.index"
                                             "; No space left on device [Op:SaveV2]")
            return write_best(directory, model, e, value)
        monkeypatch.setattr(checkpoints, "write_best", full)
    elif where == "export":
        def full(path):
            raise _no_space(os.path.join(path, "variables", "variables.data-00000-of-00001"))
        monkeypatch.setattr(export.tf.saved_model, "save", lambda obj, path, **kw: full(path))


@pytest.mark.slow
@pytest.mark.parametrize("where", ["metrics", "backup", "best", "export"])
def test_a_full_disk_stops_in_one_line_and_the_run_resumes_once_space_is_freed(
        tmp_path, fashion_idx_dir, monkeypatch, where):
    """The disk fills while epoch 3 (of 4) is written, or while the SavedModel is: the run stops
    with a DiskFullError naming the space free and needed and where it resumes; every file
    written before is intact; run again with space, it redoes only what was lost and ends with
    every epoch once."""
    import csv
    from tfvae.training import runstate
    workdir = str(tmp_path / "run")
    config = tiny_config(fashion_idx_dir, train__epochs=4)
    monkeypatch.undo()
    with monkeypatch.context() as m:
        _fill_disk_at(m, where, epoch=2)
        with pytest.raises(DiskFullError) as caught:
            train.train_and_evaluate(config, workdir, verbose=0)
    message = _one_line(caught.value)
    assert "no space left" in message and " free; the run needs about " in message, message
    resumes = "after epoch 4" if where == "export" else "after epoch 2"
    assert resumes in message and "intact" in message, message
    with open(os.path.join(workdir, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [int(r["epoch"]) for r in rows]
    assert kept == (list(range(4)) if where == "export" else [0, 1, 2][:len(kept)]), kept
    assert all(r["val_elbo"] not in ("", None) for r in rows)  # no half row
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    assert not [p for p in os.listdir(workdir) if p.startswith(".tmp-")]
    runstate.read_config(os.path.join(workdir, "config.json"))
    results = train.train_and_evaluate(config, workdir, verbose=0)
    with open(os.path.join(workdir, "metrics.csv"), newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2, 3]
    assert results["epochs_trained"] == 4 and np.isfinite(results["test"]["elbo"]["mean"])
    assert os.path.isfile(os.path.join(workdir, "saved_model", "saved_model.pb"))


def test_a_full_disk_in_the_cli_is_one_line_naming_the_path(tmp_path, capsys):
    """`storage.disk_full` of Python's and TensorFlow's errors: the path written, free MB."""
    from tfvae import storage
    assert storage.is_disk_full(_no_space("/x/y"))
    assert storage.is_disk_full(tf.errors.ResourceExhaustedError(
        None, None, "/w/backup/chief/ckpt-3.index: No space left on device"))
    assert not storage.is_disk_full(tf.errors.ResourceExhaustedError(None, None, "OOM when "
                                                                     "allocating tensor"))
    assert not storage.is_disk_full(OSError(13, "Permission denied", "/x"))
    err = storage.disk_full(tf.errors.UnknownError(
        None, None, f"{tmp_path}/checkpoints/best-00002.index; No space left on device"),
        str(tmp_path), resumes_at=2)
    text = _one_line(err)
    assert f"{tmp_path}/checkpoints/best-00002.index" in text and "after epoch 2" in text


# ---------------------------------------------------------------------- one run per workdir
def _holding(workdir):
    """A tfvae-train subprocess that holds ``workdir``'s lock (and trains on, 3,000 epochs of
    512 images); returned once it holds it."""
    import subprocess
    import time

    from commands import command
    from tfvae.training import locks
    proc = subprocess.Popen(
        [*command("train"), f"--workdir={workdir}", "--config.data.source=idx",
         f"--config.data.idx_dir={os.environ['TFVAE_TEST_FASHION']}",
         "--config.data.train_size=512", "--config.data.test_size=200",
         "--config.data.validation_size=200", "--config.model.latent_dims=(4,)",
         "--config.model.network.hidden=(32,)", "--config.train.epochs=3000",
         "--config.eval.plots=False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.time()
    while locks.holder(workdir) is None or not os.path.exists(os.path.join(workdir,
                                                                           "metrics.csv")):
        if proc.poll() is not None or time.time() - start > 300:
            proc.kill()
            pytest.fail(f"the holder ended (rc={proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_one_training_per_workdir_and_a_killed_holder_leaves_it_free(tmp_path, fashion_idx_dir,
                                                                      monkeypatch, capsys):
    """While a tfvae-train trains, a second one on its workdir is refused in one line naming
    the holder's pid and host, before it reads anything; tfvae-evaluate writes nothing into it
    (but does write --out); once the holder is SIGKILLed the lock is gone with it (an OS lock,
    not a file) and the run resumes."""
    import signal
    import socket

    from tfvae.training import locks, runs
    from tfvae.errors import WorkdirError
    monkeypatch.setenv("TFVAE_TEST_FASHION", fashion_idx_dir)
    workdir = str(tmp_path / "run")
    holder = _holding(workdir)
    try:
        who = locks.holder(workdir)
        assert who["pid"] == holder.pid and who["host"] == socket.gethostname()
        config = tiny_config(fashion_idx_dir, train__epochs=3000)
        with pytest.raises(WorkdirError) as caught:
            train.train_and_evaluate(config, workdir, verbose=0)
        text = _one_line(caught.value)
        assert f"in use by another tfvae-train (pid {holder.pid} on {socket.gethostname()}" in text
        assert "choose another --workdir" in text
        said = []
        assert runs.destination(workdir, "", said.append) is None
        assert "holds" in said[0] and "--out=" in said[0]
        out = str(tmp_path / "new" / "folder" / "evaluation.json")
        assert runs.destination(workdir, out) == out
        assert os.path.isdir(os.path.dirname(out))
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert locks.holder(workdir) is None                      # the kernel dropped the lock
    assert os.path.exists(os.path.join(workdir, locks.LOCK))  # the file stays, harmlessly
    lock = locks.WorkdirLock(workdir).acquire()
    assert locks.holder(workdir)["pid"] == os.getpid()
    lock.release()
    import csv

    from tfvae.training import runstate
    config = runstate.read_config(os.path.join(workdir, "config.json"))
    with open(os.path.join(workdir, "metrics.csv"), newline="") as f:
        done = len(list(csv.DictReader(f)))
    config.train.epochs = done + 1
    results = train.train_and_evaluate(config, workdir, verbose=0)
    assert results["epochs_trained"] == done + 1
    assert locks.holder(workdir) is None                      # released when the run ended


def test_out_paths_are_created_or_refused_in_one_line(tmp_path):
    """``--out`` of tfvae-evaluate and tfvae-sample: missing folders are made; a folder, a
    wrong suffix or an unwritable place is refused naming the flag."""
    from tfvae import storage
    from tfvae.cli import sample
    out = str(tmp_path / "a" / "b" / "grid.png")
    assert storage.output_file(out, "--out", sample.IMAGE_SUFFIXES) == out
    assert os.path.isdir(os.path.dirname(out))
    for bad, says in [(str(tmp_path), "is a folder"), (str(tmp_path / "x.txt"), "write a .png"),
                      ("/proc/tfvae/x.png", "cannot write into"), ("", "is empty")]:
        with pytest.raises(ConfigError) as caught:
            storage.output_file(bad, "--out", sample.IMAGE_SUFFIXES)
        assert says in _one_line(caught.value) and "--out" in str(caught.value)


@pytest.mark.slow
def test_the_commands_say_a_broken_workdir_in_one_line(tiny_run, tmp_path):
    """As a user meets it: tfvae-train resuming a workdir whose config.json was cut short, and
    tfvae-evaluate on one written by a newer tfvae, exit 1 with one line naming the file and
    the way out; tfvae-evaluate on a workdir whose best checkpoint is truncated falls back to
    the other and says which epoch."""
    import glob
    import json
    import shutil

    from commands import command, run_together
    cut, newer, truncated = (str(tmp_path / n) for n in ("cut", "newer", "truncated"))
    for w in (cut, newer, truncated):
        shutil.copytree(tiny_run, w)
    os.remove(os.path.join(cut, "results.json"))
    text = open(os.path.join(cut, "config.json")).read()
    open(os.path.join(cut, "config.json"), "w").write(text[: len(text) // 2])
    stored = json.load(open(os.path.join(newer, "config.json")))
    stored["tfvae_version"] = "99.0.0"
    json.dump(stored, open(os.path.join(newer, "config.json"), "w"))
    best = sorted(glob.glob(os.path.join(truncated, "checkpoints", "best-*.data-*")))
    assert len(best) == 2, best
    data = open(best[-1], "rb").read()
    open(best[-1], "wb").write(data[: len(data) // 3])
    evaluate = [*command("evaluate"), "--iw_samples=2", "--examples=20"]
    resumed, newer_run, fallback = run_together(
        [*command("train"), f"--workdir={cut}"],
        [*evaluate, f"--workdir={newer}"],
        [*evaluate, f"--workdir={truncated}", f"--out={tmp_path / 'e.json'}"])
    for done, says in [(resumed, "config.json"), (newer_run, "99.0.0")]:
        errors = [line for line in done.stderr.splitlines() if line.startswith("tfvae-")]
        assert done.returncode == 1 and len(errors) == 1, done.stderr[-2000:]
        assert says in errors[0] and "Traceback" not in done.stderr, errors
    assert "--workdir" in resumed.stderr.splitlines()[-1]
    assert fallback.returncode == 0, fallback.stderr[-2000:]
    assert "using the best checkpoint of epoch 1" in fallback.stderr, fallback.stderr[-2000:]


# ---------------------------------------------------------------------- the grid of parts
def _grid_walk():
    import importlib.util
    from conftest import REPO
    spec = importlib.util.spec_from_file_location(
        "grid_walk", os.path.join(REPO, "benchmarks", "grid_walk.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_seeded_sample_of_the_grid_of_parts_trains_or_is_refused_in_one_line(
        fashion_idx_dir):
    """prior x posterior x likelihood x pixels x network x label role x latent layers
    (9,216 combinations; `benchmarks/grid_walk.py` walks them all): each of 40 drawn with a
    fixed seed (TFVAE_BATTERY_SEED draws others) trains a step to a finite loss, evaluates
    and samples, or is refused before training with one line. Every part value is drawn."""
    walk = _grid_walk()
    drawn = walk.sample(40, int(os.environ.get("TFVAE_BATTERY_SEED", 0)))
    outcomes = {}
    for combo in drawn:
        row = walk.walk_one(combo, fashion_idx_dir)
        assert row["outcome"] != "fault", (walk.name(combo), row["message"])
        outcomes.setdefault(row["outcome"], []).append(combo)
    assert len(outcomes.get("trained", [])) >= 5, {k: len(v) for k, v in outcomes.items()}
    for field, values in walk.GRID.items():
        assert {c[field] for c in drawn} == set(values), field


def test_tfvae_sample_of_an_unfinished_run_writes_nothing_into_its_workdir(tiny_run, tmp_path):
    """A workdir without a SavedModel (a run in training) is exported to a temporary folder,
    sampled and the folder removed: the workdir is left as it was."""
    import glob
    import shutil
    import tempfile

    from tfvae.cli import sample
    workdir = str(tmp_path / "run")
    shutil.copytree(tiny_run, workdir)
    shutil.rmtree(os.path.join(workdir, "saved_model"))
    before = sorted(os.listdir(workdir))
    temporaries = set(glob.glob(os.path.join(tempfile.gettempdir(), "tfvae_sample_*")))
    out = str(tmp_path / "made" / "grid.png")
    images = sample.run(out, workdir=workdir, num=4, seed=1, say=lambda m: None)
    assert os.path.getsize(out) > 0 and np.all(np.isfinite(images))
    assert sorted(os.listdir(workdir)) == before
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "tfvae_sample_*"))) <= temporaries
