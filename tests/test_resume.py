"""Runs that survive interruption: SIGKILL mid-training and during the final evaluation, corrupt
checkpoints, changed configs, and run statistics that cover the whole run."""
import csv
import glob
import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from commands import command
from conftest import make_config
from tfvae.training import callbacks, checkpoints, runs, runstate, train
from tfvae.results import figures, plots
from tfvae.errors import CheckpointError, ConfigError, WorkdirError


def _rows(workdir):
    with open(os.path.join(workdir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def _epochs(workdir):
    return [int(r["epoch"]) for r in _rows(workdir)]


def _json(workdir, name):
    with open(os.path.join(workdir, name)) as f:
        return json.load(f)


def _cli(workdir, fashion_idx_dir, *overrides):
    return [*command("train"), "--workdir", workdir,
            "--config.data.source=idx", f"--config.data.idx_dir={fashion_idx_dir}",
            "--config.data.test_size=500", "--config.data.validation_size=500",
            "--config.eval.plots=False", *overrides]


def _kill_when(cmd, condition, timeout=300):
    """Runs ``cmd`` and sends it SIGKILL as soon as ``condition()`` holds (polled every 20 ms)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.time()
    try:
        while proc.poll() is None:
            if condition():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return
            if time.time() - start > timeout:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    pytest.fail(f"the run ended (rc={proc.returncode}) before the kill point:\n{err[-3000:]}")


def _csv_rows_at_least(workdir, n):
    def check():
        try:
            return len(_rows(workdir)) >= n
        except (OSError, csv.Error):
            return False
    return check


@pytest.mark.slow
def test_sigkill_resume_keeps_the_best_epoch_of_the_whole_run(tmp_path, fashion_idx_dir):
    """An overfitting run (200 training images) peaks early; killed at epoch ~80 and resumed,
    its best checkpoint, results and export must still be the peak epoch's, not the first
    resumed epoch's (Keras's ModelCheckpoint forgot its best value across processes)."""
    workdir = str(tmp_path / "run")
    cmd = _cli(workdir, fashion_idx_dir, "--config.data.train_size=200",
               "--config.data.batch_size=50", "--config.train.learning_rate=3e-3",
               "--config.train.epochs=110", "--config.eval.iw_samples=10",
               "--config.eval.iw_examples=100")
    _kill_when(cmd, _csv_rows_at_least(workdir, 80))
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    assert runstate.RunDir(workdir).results() is None          # not finished
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming training at epoch" in out.stderr

    epochs = _epochs(workdir)
    assert epochs == list(range(110))              # every epoch once, none twice
    val = np.array([float(r["val_elbo"]) for r in _rows(workdir)])
    best = int(np.argmax(val))
    assert best < 70 and val[best] > val[-1] + 20  # the run did overfit after its peak
    results = _json(workdir, "results.json")
    assert runstate.RunDir(workdir).results() == results
    assert results["best_epoch"] == best + 1
    assert results["best_val_elbo"] == pytest.approx(val[best], abs=1e-3)
    # The weights evaluated are the peak's: their validation ELBO is near the peak's value
    # (a fresh Monte Carlo estimate), far from the first resumed epoch's and the last one's.
    assert abs(results["validation"]["elbo"]["mean"] - val[best]) < 3.0
    assert results["validation"]["elbo"]["mean"] > max(val[80:]) + 10
    found = checkpoints.find_best(os.path.join(workdir, "checkpoints"))
    assert found.epoch == best and found.value == pytest.approx(val[best])
    assert results["epochs_trained"] == 110


@pytest.mark.slow
def test_sigkill_during_final_evaluation_resumes_there(tmp_path, fashion_idx_dir):
    """Killed while computing the k = 5,000 log-likelihood, the rerun (with a smaller k: an
    evaluation setting may change) does not train again and writes each epoch once."""
    workdir = str(tmp_path / "run")
    base = ["--config.data.train_size=1024", "--config.train.epochs=3",
            "--config.eval.iw_examples=500"]
    cmd = _cli(workdir, fashion_idx_dir, *base, "--config.eval.iw_samples=5000")

    def evaluating():
        state = os.path.join(workdir, "run.json")
        return os.path.exists(state) and _json(workdir, "run.json").get("phase") == "trained"

    _kill_when(cmd, evaluating)
    time.sleep(0.1)
    assert _epochs(workdir) == [0, 1, 2]
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    again = _cli(workdir, fashion_idx_dir, *base, "--config.eval.iw_samples=40")
    out = subprocess.run(again, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "training already finished (3 epochs); resuming at the final evaluation" in out.stderr
    assert "log p(x), k=40: 500/500 images" in out.stderr and "images/s" in out.stderr
    assert _epochs(workdir) == [0, 1, 2]
    results = _json(workdir, "results.json")
    assert results["epochs_trained"] == 3 and results["test"]["iw_samples"] == 40
    # The changed evaluation setting is recorded, and config.json says what the run used.
    state = _json(workdir, "run.json")
    assert state["config_changes"] == [
        {"epoch": 3, "changes": {"eval.iw_samples": [5000, 40]}}]
    assert _json(workdir, "config.json")["eval"]["iw_samples"] == 40
    assert os.path.exists(os.path.join(workdir, "saved_model", "saved_model.pb"))


def _fashion(fashion_idx_dir, **overrides):
    settings = dict(data__source="idx", data__idx_dir=fashion_idx_dir, data__test_size=500,
                    data__validation_size=500, data__train_size=512, data__pixels="binary",
                    data__batch_size=64, train__epochs=3, eval__iw_samples=10,
                    eval__iw_examples=50, eval__plots=False)
    return make_config(**(settings | overrides))


def _interrupt_at(monkeypatch, epoch):
    """Makes training raise KeyboardInterrupt at the end of ``epoch`` (before anything of that
    epoch is written: Throughput is the first callback)."""
    original = callbacks.Throughput.on_epoch_end

    def interrupt(self, e, logs=None):
        original(self, e, logs)
        if e == epoch:
            raise KeyboardInterrupt
    monkeypatch.setattr(callbacks.Throughput, "on_epoch_end", interrupt)
    return original


def _flip_bytes(path):
    data = bytearray(open(path, "rb").read())
    for i in range(len(data) // 3, len(data) // 3 + 16):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


@pytest.mark.slow
def test_resumed_statistics_cover_the_whole_run_and_corrupt_files_fall_back(
        tmp_path, fashion_idx_dir, monkeypatch, capsys):
    workdir = str(tmp_path / "run")
    config = _fashion(fashion_idx_dir, train__epochs=4)
    original = _interrupt_at(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(config, workdir, verbose=0)
    assert _epochs(workdir) == [0, 1]
    backups = sorted(glob.glob(os.path.join(workdir, "backup", "chief", "ckpt-*.index")))
    assert len(backups) == 2                      # epochs 0 and 1: a corrupt one falls back
    newest = max(backups, key=lambda p: int(p.split("-")[-1].split(".")[0]))
    _flip_bytes(glob.glob(newest[: -len(".index")] + ".data-*")[0])

    monkeypatch.setattr(callbacks.Throughput, "on_epoch_end", original)
    curves = {}
    monkeypatch.setattr(plots, "training_curves",
                        lambda history, path, **kw: curves.update(history) or path)
    config.eval.plots = True
    monkeypatch.setattr(figures, "save",
                        lambda model, splits, workdir, history: [plots.training_curves(history, "x")])
    results = train.train_and_evaluate(config, workdir, verbose=0)
    err = capsys.readouterr().err
    assert "ckpt-" in err and "corrupt" in err    # the bad file is named
    assert "resuming training at epoch 2 of 4" in err
    assert _epochs(workdir) == [0, 1, 2, 3]       # epoch 1 redone once, no duplicate rows
    rows = _rows(workdir)
    assert results["epochs_trained"] == 4
    assert results["train_time_s"] == pytest.approx(sum(float(r["epoch_time_s"]) for r in rows))
    assert len(curves["val_elbo"]) == 4           # curves.png covers the whole run


def test_corrupt_best_checkpoint_falls_back_or_says_what_to_do(tmp_path, fashion_idx_dir,
                                                               capsys):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(_fashion(fashion_idx_dir), workdir, verbose=0)
    directory = os.path.join(workdir, "checkpoints")
    saved = checkpoints.best_checkpoints(directory)
    assert len(saved) == 2
    newest, older = saved
    _flip_bytes(glob.glob(newest + ".data-*")[0])
    found = checkpoints.find_best(directory, warn=print)
    assert found.path == older
    assert f"{newest}.data-00000-of-00001: corrupt" in capsys.readouterr().out
    run = runs.open_run(workdir)                   # reopening the run uses the older one
    assert run.results["epochs_trained"] == 3
    assert run.source.startswith("best checkpoint (epoch ") and run.source.endswith(older)
    with open(older + ".index", "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"no intact best checkpoint .*Restore the files"):
        checkpoints.find_best(directory, warn=print)


@pytest.mark.slow
def test_changed_config_is_refused_and_safe_changes_are_recorded(tmp_path, fashion_idx_dir,
                                                                  monkeypatch):
    workdir = str(tmp_path / "run")
    original = _interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        train.train_and_evaluate(_fashion(fashion_idx_dir), workdir, verbose=0)
    monkeypatch.setattr(callbacks.Throughput, "on_epoch_end", original)
    stored = open(os.path.join(workdir, "config.json")).read()
    changed = _fashion(fashion_idx_dir, model__latent_dims=(7,), train__learning_rate=0.01)
    with pytest.raises(WorkdirError, match=r"another config: model\.latent_dims=\[7\] \(was \[10\]\), "
                                           r"train\.learning_rate=0\.01 \(was 0\.001\)"):
        train.train_and_evaluate(changed, workdir, verbose=0)
    assert open(os.path.join(workdir, "config.json")).read() == stored  # never misreported
    results = train.train_and_evaluate(_fashion(fashion_idx_dir, train__epochs=4), workdir,
                                       verbose=0)
    assert results["epochs_trained"] == 4 and _epochs(workdir) == [0, 1, 2, 3]
    assert _json(workdir, "run.json")["config_changes"] == [
        {"epoch": 1, "changes": {"train.epochs": [3, 4]}}]
    assert _json(workdir, "config.json")["train"]["epochs"] == 4


@pytest.mark.slow
def test_rerun_after_divergence_leaves_no_stale_rows(tmp_path, fashion_idx_dir, monkeypatch):
    from test_train import _NaNAfter
    from tfvae.inference import estimators
    from tfvae.errors import TrainingDivergedError
    monkeypatch.setitem(estimators.ESTIMATORS._items, "nan_after_40", _NaNAfter)
    workdir = str(tmp_path / "run")
    config = _fashion(fashion_idx_dir, estimator__name="nan_after_40", train__epochs=10,
                      train__steps_per_execution=1, data__batch_size=32)
    for _ in range(2):
        with pytest.raises(TrainingDivergedError, match="loss became nan in epoch 3"):
            train.train_and_evaluate(config, workdir, verbose=0)
        epochs = _epochs(workdir)
        assert epochs == [0, 1, 2]                 # the diverged epoch once, never twice
        assert np.isnan(float(_rows(workdir)[-1]["loss"]))
    # The backup never holds the diverged state: the rerun restarted from epoch 2's start.
    assert checkpoints.resume_epoch(os.path.join(workdir, "backup")) == 2


def test_workdir_checks_write_nothing_before_the_data_loads(tmp_path, monkeypatch):
    from tfvae.errors import DataError
    workdir = tmp_path / "new" / "run"
    bad = make_config(data__source="idx", data__idx_dir=str(tmp_path / "missing"))
    with pytest.raises(DataError, match="does not exist"):
        train.train_and_evaluate(bad, str(workdir))
    assert not (tmp_path / "new").exists()         # no half-made workdir

    # Parts that cannot work together are refused before the workdir exists, so the corrected
    # command can use the same --workdir.
    with pytest.raises(ConfigError, match="estimator 'hybrid' needs a mixture posterior"):
        train.train_and_evaluate(make_config(model__posterior__name="iaf", estimator__name="hybrid",
                                             data__train_size=500), str(workdir))
    assert not (tmp_path / "new").exists()

    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkdirError, match="is a file, not a folder"):
        train.train_and_evaluate(make_config(), str(tmp_path / "file" / "run"))

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Read-only file system")
    monkeypatch.setattr(runstate.tempfile, "TemporaryFile", read_only)
    with pytest.raises(WorkdirError, match=r"is not writable .*Read-only file system.*choose"):
        train.train_and_evaluate(make_config(), str(workdir))
    assert not (tmp_path / "new").exists()


def test_resumed_metrics_csv_keeps_its_columns(tmp_path):
    """A resumed run whose logs differ from the file's header (a metric gone, one new) still
    appends rows under that header, each value in its own column."""
    from tfvae.training import callbacks, runstate
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,elbo,loss,val_elbo,val_iwae\n0,-100.0,100.0,-101.0,-99.0\n")
    logger = callbacks.MetricsCSVLogger(str(path), append=True)
    logger.on_train_begin()
    logger.on_epoch_end(1, {"elbo": -90.0, "loss": 90.0, "val_elbo": -91.0, "new": 7.0})
    logger.on_train_end()
    rows = runstate.RunDir(str(tmp_path)).metrics()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["elbo"] == -90.0 and rows[1]["loss"] == 90.0 and rows[1]["val_elbo"] == -91.0
    assert np.isnan(rows[1]["val_iwae"]) and "new" not in rows[1]


def test_a_backup_under_a_relative_workdir_is_found(tmp_path, monkeypatch):
    """``--workdir=runs/x`` (relative, as the README writes it): the backup's state file holds
    paths relative to its folder, which TensorFlow already joins to the folder it was given;
    joining them again (runs/x/backup/chief/runs/x/backup/chief/ckpt-N) lost every backup."""
    import tensorflow as tf
    monkeypatch.chdir(tmp_path)
    backup = os.path.join("runs", "x", "backup")
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(ckpt_saved_epoch=tf.Variable(2, dtype=tf.int64)),
        os.path.join(backup, "chief"), max_to_keep=2)
    manager.save(checkpoint_number=3)
    assert checkpoints.resume_epoch(backup, warn=pytest.fail) == 3
    assert os.path.exists(checkpoints.latest_backup(backup) + ".index")


# ---------------------------------------------------------------------- killed mid-write
KILLPOINT = os.path.join(os.path.dirname(__file__), "killpoint.py")
TIMED = ("epoch_time_s", "train_images_per_s")  # the only columns allowed to differ


def _killed_at(point, nth, cmd):
    """Runs ``cmd`` (a tfvae-train argv) until its ``nth`` passage through ``point``
    (tests/killpoint.py), where it is SIGKILLed."""
    import sys
    done = subprocess.run([sys.executable, KILLPOINT, point, str(nth), *cmd],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == -signal.SIGKILL, (point, nth, done.returncode, done.stderr[-3000:])


def _resumes_at(workdir):
    return checkpoints.resume_epoch(os.path.join(workdir, "backup"),
                                    warn=lambda m: None)


def _comparable(workdir):
    results = _json(workdir, "results.json")
    rows = [{k: v for k, v in r.items() if k not in TIMED} for r in _rows(workdir)]
    return {k: results[k] for k in ("test", "validation", "epochs_trained", "best_epoch",
                                    "best_val_elbo", "stopped")}, rows


@pytest.mark.slow
def test_killed_in_every_write_path_the_resumed_run_equals_one_stopped_between_epochs(
        tmp_path, fashion_idx_dir):
    """SIGKILL inside the writes of metrics.csv, a training backup (files written, state file
    not), a best checkpoint, the SavedModel and results.json, at points drawn with a fixed
    seed; resumed each time, the run has every epoch once and ends with exactly the results
    and metrics of a run stopped only between epochs, at the same epochs (a resumed run
    restarts its random streams from config.seed, so the reference must resume where it did)."""
    import random
    epochs = 6
    rng = random.Random(int(os.environ.get("TFVAE_BATTERY_SEED", 0)))
    workdir, reference = str(tmp_path / "killed"), str(tmp_path / "reference")

    def cmd(where):
        return _cli(where, fashion_idx_dir, "--config.data.train_size=512",
                    "--config.data.pixels=binary", "--config.model.latent_dims=(4,)",
                    "--config.model.network.hidden=(32,)", f"--config.train.epochs={epochs}",
                    "--config.eval.iw_samples=5", "--config.eval.iw_examples=50")

    boundaries = []
    for point, nth in [("metrics", rng.randint(2, 3)), ("backup_state", rng.randint(1, 3)),
                       ("best", 1), ("export", 1), ("results", 1)]:
        _killed_at(point, nth, cmd(workdir))
        assert not os.path.exists(os.path.join(workdir, "results.json")), point
        epochs_seen = _epochs(workdir)                      # whole rows only, each epoch once
        assert epochs_seen == list(range(len(epochs_seen))), (point, epochs_seen)
        runstate.read_config(os.path.join(workdir, "config.json"))
        boundaries.append(_resumes_at(workdir))
    done = subprocess.run(cmd(workdir), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _epochs(workdir) == list(range(epochs))
    assert boundaries[-1] == epochs and boundaries[0] >= 1, boundaries

    before = 0
    for b in sorted(set(boundaries) - {epochs}):
        _killed_at("epoch_end", b - before, cmd(reference))
        assert _resumes_at(reference) == b
        before = b
    done = subprocess.run(cmd(reference), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    killed, clean = _comparable(workdir), _comparable(reference)
    assert killed == clean, boundaries
    assert not glob.glob(os.path.join(workdir, "**", ".tmp-*"), recursive=True)
