"""The `tf.distribute` strategy a run trains under (``config.train.strategy``), built in one place.

- ``auto``: ``MirroredStrategy`` over all local GPUs when there are several, else the default
  (one device);
- ``default``: one device, no replication;
- ``mirrored``: ``MirroredStrategy`` over ``train.devices`` (e.g. "/gpu:0,/gpu:1"), or all
  local GPUs;
- ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``;
- ``tpu``: ``TPUStrategy`` with the resolver at ``train.tpu`` ('' = the local TPU).

Build the strategy before any other TensorFlow operation runs: ``MultiWorkerMirroredStrategy``
configures collective ops, which TensorFlow allows only at program start-up (`tfvae.training.train.run`
builds it first). Under several workers only the chief writes the workdir (`is_chief`); the
others write what must be written collectively to scratch folders that are removed (Keras's
``distributed_file_utils``, as its ``BackupAndRestore`` and ``TensorBoard`` do).

``data.batch_size`` is the global batch: each of R replicas gets 1/R of it, and the model divides
its loss by R so the applied gradient is the global batch's mean gradient (`VAE.train_step`).
"""
import json
import os
import shutil

import tensorflow as tf

from tfvae import precision as precision_lib
from tfvae.errors import ConfigError
from tfvae.registry import Registry

STRATEGIES = Registry("strategy", field="train.strategy", plural="strategies")


def _devices(train_config):
    return [d.strip() for d in str(train_config.devices).split(",") if d.strip()] or None


@STRATEGIES.register("default")
def _default(train_config):
    return tf.distribute.get_strategy()


@STRATEGIES.register("auto")
def _auto(train_config):
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


@STRATEGIES.register("mirrored")
def _mirrored(train_config):
    return tf.distribute.MirroredStrategy(devices=_devices(train_config))


@STRATEGIES.register("multi_worker")
def _multi_worker(train_config):
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ConfigError(
            "train.strategy='multi_worker' needs the cluster in TF_CONFIG, e.g. "
            "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
            "\"task\": {\"type\": \"worker\", \"index\": 0}}' on the first worker")
    try:
        json.loads(raw)
    except ValueError as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({err}); see README, 'A cluster'") from None
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as err:
        if "program startup" not in str(err):
            raise
        raise ConfigError("train.strategy='multi_worker' must be built before any TensorFlow "
                          "operation runs: call tfvae.training.distribute.build first in the program "
                          "(tfvae-train does)") from None


@STRATEGIES.register("tpu")
def _tpu(train_config):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=train_config.tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as err:
        raise ConfigError(f"train.strategy='tpu': no TPU could be reached at "
                          f"train.tpu={train_config.tpu!r} ({str(err).splitlines()[0]}); "
                          "use another strategy on this machine") from None
    return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the one process that writes the workdir: always, except on the non-chief
    workers of a multi-worker strategy."""
    return bool(strategy.extended.should_checkpoint)


def is_multi_worker(strategy) -> bool:
    """True for a strategy spanning several worker processes (a cluster from ``TF_CONFIG``)."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and bool(strategy.cluster_resolver.cluster_spec().as_dict()))


def input_shard(strategy):
    """``(num_workers, worker_index)`` of this process in a multi-worker cluster (a chief
    first, then the workers, as `tf.distribute` numbers input pipelines), else None: what
    `tfvae.data.load` shards a streamed training pipeline by."""
    if not is_multi_worker(strategy):
        return None
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec()
    chiefs = spec.num_tasks("chief") if "chief" in spec.jobs else 0
    workers = spec.num_tasks("worker") if "worker" in spec.jobs else 0
    index = 0 if resolver.task_type == "chief" else chiefs + int(resolver.task_id)
    return chiefs + workers, index


def write_dir(directory: str, strategy) -> str:
    """Where this process writes what ``directory`` should hold: ``directory`` itself for the
    chief; a scratch folder inside it for another worker of a cluster, which must take part in
    a save (replicated variables are read collectively) but whose copy is not kept
    (`remove_scratch`). The same layout as Keras's own callbacks use."""
    if strategy is None or is_chief(strategy):
        return directory
    return os.path.join(directory, f"workertemp_{strategy.cluster_resolver.task_id}")


def remove_scratch(directory: str, strategy) -> None:
    """Removes a non-chief worker's scratch copy written to `write_dir`."""
    if strategy is not None and not is_chief(strategy):
        shutil.rmtree(write_dir(directory, strategy), ignore_errors=True)


def is_default(strategy: tf.distribute.Strategy) -> bool:
    """True for TensorFlow's default strategy (one device, no replication)."""
    return strategy is tf.distribute.get_strategy()  # outside any scope: the default


# XLA per network on CPU, as measured on this project's 2-core machine (training images/s;
# benchmarks/conv_speed.py, benchmarks/throughput.py, docs/RESULTS.md): XLA speeds up the dense
# networks (5.6 vs 8.2 ms per step for the literature's gated MLP) and slows the convolutional
# one (182 vs 407 images/s at 64 x 64; 1,628 vs 1,960 at 28 x 28), whose oneDNN convolutions
# with fused bias and activation XLA:CPU does not match. On a GPU XLA is used for every network.
XLA_ON_CPU = {"mlp": True, "gated_mlp": True, "cnn": False, "gated_cnn": False,
              "broadcast": False, "pose": False}  # the last two: a cnn encoder
JIT_CHOICES = ("auto", True, False)


def jit_compile(strategy: tf.distribute.Strategy, requested, network: str = "mlp",
                warn=None, precision: str = "float32") -> bool:
    """Whether the train step is XLA-compiled under ``strategy``: ``requested`` True or False
    (also 'true' / 'false' from a command line), or 'auto': on with a GPU; on CPU devices
    `XLA_ON_CPU` of the network, and never under a bfloat16 ``precision`` (XLA:CPU's bfloat16
    matmuls are slower than its float32 ones, while TensorFlow's oneDNN kernels run them faster
    than float32 on a CPU with AVX512-BF16: docs/RESULTS.md). Never where the replicas are CPU
    devices: XLA has no collectives for CPU devices across workers ("Collectives are not yet
    implemented for CPU devices when compiling with XLA", b/194942685), and within one process an XLA cluster cannot reach a variable placed on
    another CPU device ("Trying to access resource ... located in device CPU:1 from device
    CPU:0")."""
    requested = jit_setting(requested)
    if requested == "auto":
        if tf.config.list_logical_devices("GPU"):
            requested = True
        else:
            requested = (XLA_ON_CPU.get(network, True)
                         and precision_lib.policy(precision).compute_dtype
                         != "bfloat16")
    if not requested:
        return False
    multi_worker = is_multi_worker(strategy)
    devices = ([d.upper() for d in strategy.extended.worker_devices]
               if strategy is not None and strategy.num_replicas_in_sync > 1 else [])
    cpu_replicas = any("CPU" in d for d in devices)
    if (multi_worker and not tf.config.list_logical_devices("GPU")) or cpu_replicas:
        if warn:
            where = "cross-worker collectives" if multi_worker else "variables on several CPU devices"
            warn(f"note: train.jit_compile is off for this run: XLA has no {where} on CPU devices")
        return False
    return True


def jit_setting(value):
    """``train.jit_compile`` as True, False or 'auto'; raises `ConfigError` otherwise."""
    text = str(value).strip().lower()
    if text in ("auto", "true", "false", "1", "0", "on", "off"):
        return "auto" if text == "auto" else text in ("true", "1", "on")
    raise ConfigError(f"train.jit_compile={value!r}; use auto (XLA where it is faster for the "
                      "network and device), true or false")


def build(train_config) -> tf.distribute.Strategy:
    """The strategy named by ``train_config.strategy``."""
    return STRATEGIES.build(train_config.strategy, train_config)
