"""The `tf.distribute` strategy a run trains under (``config.train.strategy``), built in one place.

- ``auto``: ``MirroredStrategy`` over all local GPUs when there are several, else the default
  (one device);
- ``default``: one device, no replication;
- ``mirrored``: ``MirroredStrategy`` over ``train.devices`` (e.g. "/gpu:0,/gpu:1"), or all
  local GPUs;
- ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from ``TF_CONFIG``;
- ``tpu``: ``TPUStrategy`` with the resolver at ``train.tpu`` ('' = the local TPU).

``data.batch_size`` is the global batch: each of R replicas gets 1/R of it, and the model divides
its loss by R so the applied gradient is the global batch's mean gradient (`VAE.train_step`).
"""
import json
import os

import tensorflow as tf

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
    return tf.distribute.MultiWorkerMirroredStrategy()


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


def build(train_config) -> tf.distribute.Strategy:
    """The strategy named by ``train_config.strategy``."""
    return STRATEGIES.build(train_config.strategy, train_config)
