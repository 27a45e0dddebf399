"""tf.distribute: one step under MirroredStrategy over 2 logical CPUs applies the same update as
one device on the same global batch (the loss-scaling trap), and replicated state agrees."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from commands import command
from conftest import REPO, make_config
from tfvae.training import validation
from tfvae.errors import ConfigError

PROBE = textwrap.dedent("""
    import sys
    import numpy as np, tensorflow as tf, tf_keras as keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    from conftest import make_config
    from tfvae.models import builder
    from tfvae.inference import discrete, estimators

    class MeanCode(estimators.Reparameterized):
        # The ELBO's terms at z = mean of q(z|x): the same gradient on every run (no noise).
        def terms(self, model, x, beta=1.0, training=False, update_state=True):
            q = model.encode(x, training=training)
            z = q.mean()[None]
            d = -tf.reduce_mean(model.likelihood(z, training=training).log_prob(x), 0)
            r = tf.reduce_sum(tf.square(q.mean()) + tf.square(q.stddev())
                              - 2 * tf.math.log(q.stddev()) - 1, -1) / 2
            return estimators.Terms(loss=tf.reduce_mean(d + beta * r), elbo=-(d + r),
                                    distortion=d, rate=r)
    estimators.ESTIMATORS._items["mean_code"] = MeanCode

    def one_step(strategy, estimator, cvs):
        config = make_config(model__network__hidden=(32,), model__latent_dims=(4,), estimator__name=estimator,
                             estimator__control_variates=cvs)
        keras.utils.set_random_seed(0)
        x = (np.random.default_rng(0).random((16, 28, 28, 1)) < 0.3).astype("float32")
        with strategy.scope():
            vae = builder.build(config, (28, 28, 1))
            vae.compile(keras.optimizers.SGD(0.1), steps_per_execution=1)
        before = [v.numpy().copy() for v in vae.trainable_variables]
        vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), epochs=1, verbose=0)
        after = [v.numpy() for v in vae.trainable_variables]
        return vae, [a - b for a, b in zip(after, before)]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    _, single = one_step(tf.distribute.get_strategy(), "mean_code", "")
    _, double = one_step(mirrored, "mean_code", "")
    worst = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-12))
                for a, b in zip(single, double))
    print("relative update difference", worst)
    assert worst < 1e-4, worst
    # Score function with running statistics: the replicas' statistics agree.
    vae, _ = one_step(mirrored, "score_function", "centered")
    cv = vae.estimator.control_variates[0]
    values = mirrored.experimental_local_results(cv.ema_mean)
    assert len(values) == 2 and float(values[0]) == float(values[1]) != 0.0
    assert float(mirrored.experimental_local_results(cv.count)[0]) == 1.0
    assert int(vae.step.numpy()) == 1

    # Every estimator: each replica draws its own latent noise (the same images on both replicas
    # give different per-example terms), and the draws repeat under the same seed.
    def replica_terms(estimator):
        config = make_config(model__network__hidden=(32,), model__latent_dims=(4,), estimator__name=estimator,
                             model__num_samples=3, estimator__control_variates="",
                             model__posterior__name="mog" if estimator == "hybrid" else "gaussian")
        keras.utils.set_random_seed(0)
        with mirrored.scope():
            vae = builder.build(config, (28, 28, 1))
        x = tf.constant((np.random.default_rng(1).random((4, 28, 28, 1)) < 0.3)
                        .astype("float32"))
        step = tf.function(lambda x: mirrored.run(
            lambda x: vae.estimator.terms(vae, x, training=True, update_state=False).elbo,
            args=(x,)))
        return [t.numpy() for t in mirrored.experimental_local_results(step(x))]

    for name in estimators.ESTIMATORS.names():
        if name == "mean_code" or name in discrete.NAMES:  # discrete codes: not this model
            continue
        first, second = replica_terms(name)
        assert not np.allclose(first, second), name      # the replicas' noise differs
        again = replica_terms(name)
        assert np.array_equal(first, again[0]) and np.array_equal(second, again[1]), name
        print("independent noise per replica, reproducible:", name)
    print("OK")
""")


@pytest.mark.slow
def test_mirrored_update_equals_the_single_device_update():
    out = subprocess.run([sys.executable, "-c", PROBE.format(tests=os.path.join(REPO, "tests"))],
                         capture_output=True, text=True, timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert out.stdout.strip().endswith("OK")


MIRRORED_RUN = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests!r})
    from conftest import make_config
    from tfvae.training import train
    config = make_config(data__source="idx", data__idx_dir={idx!r}, data__test_size=200,
                         data__validation_size=200, data__train_size=512, data__batch_size=64,
                         model__network__hidden=(32,), model__latent_dims=(4,), train__epochs=2,
                         train__strategy="mirrored", train__devices="/cpu:0,/cpu:1",
                         eval__iw_samples=5, eval__iw_examples=50, eval__plots=False)
    results = train.train_and_evaluate(config, {workdir!r}, verbose=0)
    print("RESULT", json.dumps(results["test"]))
""")


@pytest.mark.slow
def test_a_whole_mirrored_run_over_two_cpus(tmp_path, fashion_idx_dir):
    """Through the public API: XLA cannot place a step's resources across CPU devices, so the
    run must train uncompiled there (it used to end in an XLA 'Trying to access resource'
    traceback), then evaluate and export."""
    script = MIRRORED_RUN.format(tests=os.path.join(REPO, "tests"), idx=fashion_idx_dir,
                                 workdir=str(tmp_path / "run"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "RESULT" in out.stdout
    assert "XLA" in out.stderr  # the note that says why XLA is off
    assert os.path.exists(tmp_path / "run" / "saved_model" / "saved_model.pb")


def test_unknown_or_unstartable_strategies_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigError, match="train.strategy='horovod': unknown strategy; valid "
                                          "strategies are: auto, default, mirrored, "
                                          "multi_worker, tpu"):
        validation.validate(make_config(train__strategy="horovod"))
    from tfvae.training import distribute
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="needs the cluster in TF_CONFIG"):
        distribute.build(make_config(train__strategy="multi_worker").train)


WORKER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import numpy as np, tensorflow as tf, tf_keras as keras
    from conftest import make_config
    from tfvae.models import builder
    from tfvae.training import distribute
    config = make_config(model__network__hidden=(32,), model__latent_dims=(4,), train__strategy="multi_worker")
    strategy = distribute.build(config.train)
    keras.utils.set_random_seed(0)
    x = (np.random.default_rng(0).random((256, 28, 28, 1)) < 0.3).astype("float32")
    with strategy.scope():
        vae = builder.build(config, (28, 28, 1))
        vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=1)
    history = vae.fit(tf.data.Dataset.from_tensor_slices(x).batch(32).repeat(), steps_per_epoch=4,
                      epochs=2, verbose=0).history
    weights = np.concatenate([v.numpy().ravel() for v in vae.trainable_variables])
    # Every worker takes part in saving (replicated variables are read collectively); only the
    # chief's copy is kept, the other goes to a scratch path (as Keras's BackupAndRestore does).
    chief = strategy.cluster_resolver.task_id == 0
    tf.train.Checkpoint(model=vae).write({ckpt!r} if chief else {ckpt!r} + "-worker")
    print("RESULT", json.dumps({{"loss": history["loss"], "sum": float(weights.sum())}}))
""")


@pytest.mark.slow
def test_two_workers_train_in_step_on_localhost(tmp_path):
    """MultiWorkerMirroredStrategy with tf-keras: two processes (cluster from TF_CONFIG on
    loopback ports) end with identical weights and losses; the chief's checkpoint loads."""
    import json
    import socket
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    ckpt = str(tmp_path / "chief")
    code = WORKER.format(tests=os.path.join(REPO, "tests"), ckpt=ckpt)
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.split("RESULT", 1)[1]))
    assert results[0] == results[1]                   # the workers stayed in step
    assert results[0]["loss"][1] < results[0]["loss"][0]
    import tensorflow as tf
    from tfvae.models import builder
    vae = builder.build(make_config(model__network__hidden=(32,), model__latent_dims=(4,)), (28, 28, 1))
    tf.train.Checkpoint(model=vae).read(ckpt).expect_partial()
    import numpy as np
    total = float(np.concatenate([v.numpy().ravel() for v in vae.trainable_variables]).sum())
    assert total == pytest.approx(results[0]["sum"], rel=1e-6)


def _launch_workers(workdir, epochs, data_flags=None):
    """Two ``tfvae-train`` workers of one cluster (TF_CONFIG on loopback ports), same workdir;
    ``data_flags`` replace the FashionMNIST sample's."""
    import json
    import socket
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    from conftest import FASHION_IDX
    args = [*command("train"),
            "--config=" + os.path.join(REPO, "configs", "default.py"), f"--workdir={workdir}",
            "--config.train.strategy=multi_worker",
            *(data_flags or ["--config.data.source=idx", f"--config.data.idx_dir={FASHION_IDX}",
                             "--config.data.train_size=1024",
                             "--config.data.validation_size=256",
                             "--config.data.test_size=256"]),
            f"--config.train.epochs={epochs}", "--config.eval.iw_samples=10",
            "--config.eval.plots=False", "--config.model.network.hidden=32",
            "--config.model.latent_dims=4,"]
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


@pytest.mark.slow
def test_multi_worker_tfvae_train_resumes_after_a_worker_is_killed(tmp_path, fashion_idx_dir):
    """tfvae-train on a 2-worker cluster: a worker is SIGKILLed mid-run, the chief stops with
    one line saying what to do, both are started again and the run resumes from the backup and
    finishes; only the chief wrote the workdir (no scratch folders left), each epoch logged
    once, and the results are the chief's."""
    import csv
    import signal
    import time
    workdir = tmp_path / "run"
    chief, worker = _launch_workers(workdir, epochs=12)
    deadline = time.time() + 240
    while time.time() < deadline:
        metrics = workdir / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 4:  # 3 epochs done
            break
        assert chief.poll() is None, chief.communicate()[1][-3000:]
        time.sleep(0.2)
    else:
        pytest.fail("the cluster did not finish 3 epochs in time")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    try:  # the chief notices the lost heartbeats and stops (else we stop it, as a scheduler would)
        _, err = chief.communicate(timeout=120)
        assert chief.returncode == 1, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("tfvae-train: error: a worker of the cluster stopped"), last
        assert "start every worker again with the same command" in last
    except subprocess.TimeoutExpired:
        chief.kill()
        chief.communicate()
    assert not (workdir / "results.json").exists()

    procs = _launch_workers(workdir, epochs=12)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, "\n---\n".join(e[-2500:] for _, e in outs)
    assert "resuming training at epoch" in outs[0][1]
    assert "the chief worker evaluates and writes the results" in outs[1][0]
    with open(workdir / "metrics.csv") as f:
        epochs = [int(row["epoch"]) for row in csv.DictReader(f)]
    assert epochs == list(range(12))
    assert (workdir / "results.json").exists() and (workdir / "saved_model").is_dir()
    leftovers = [str(p) for p in workdir.rglob("workertemp_*")]
    assert not leftovers, leftovers


@pytest.mark.slow
def test_two_workers_stream_their_own_parts_of_a_folder(tmp_path, mnist_arrays):
    """A folder larger than data.in_memory_mb on a 2-worker cluster: each worker streams its
    half of the training files (`distribute.input_shard`), and the run trains and finishes with
    the global batch's steps per epoch."""
    import csv
    from PIL import Image
    x, y = mnist_arrays["train"]
    for k in range(3):
        os.makedirs(tmp_path / "images" / f"d{k}")
        for i in np.flatnonzero(y == k)[:120]:
            Image.fromarray(x[i, ..., 0]).save(tmp_path / "images" / f"d{k}" / f"{i}.png")
    workdir = tmp_path / "run"
    procs = _launch_workers(workdir, epochs=2, data_flags=[
        "--config.data.source=folder", f"--config.data.path={tmp_path / 'images'}",
        "--config.data.in_memory_mb=0", "--config.data.validation_size=40",
        "--config.data.test_size=40", "--config.data.batch_size=28"])
    outputs = [p.communicate(timeout=400) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "streaming them from disk" in outputs[0][1]
    with open(workdir / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1]
    assert "10/10" in outputs[0][0]  # 280 training images / global batch 28
