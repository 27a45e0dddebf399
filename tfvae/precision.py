"""Numerical precision of training (``config.train.precision``), through Keras's mixed precision.

- ``float32`` (default): everything in float32;
- ``mixed_float16``: the encoder and decoder networks compute in float16 (variables stay
  float32); every optimiser is wrapped in Keras's ``LossScaleOptimizer`` (dynamic loss scaling,
  so small float16 gradients do not underflow; a step with non-finite gradients is skipped and
  the scale halved);
- ``mixed_bfloat16``: the networks compute in bfloat16 (TPUs, recent GPUs, CPUs with
  AVX512-BF16 or AMX); bfloat16 has float32's exponent range, so no loss scaling is needed;
- ``auto``: ``mixed_bfloat16`` on a CPU that computes bfloat16 natively (and no GPU), else
  ``float32``. On this project's 2-core AVX512-BF16 CPU the convolutional VAE trains 1.2-1.3x
  faster in mixed bfloat16, and learned within float32's seed-to-seed spread
  (benchmarks/conv_speed.py, scripts/experiments/precision_check.py, docs/RESULTS.md).

Each network's output layer computes in float32 under every policy (`tfvae.models.networks`).

Only the networks' arithmetic is in low precision: their outputs are cast to float32 by a final
float32 layer, so posterior and likelihood parameters, every ``log_prob``, the KL, the priors and
the loss are float32 (Micikevicius et al. 2018; the Keras mixed precision guide).
"""
import contextlib
import functools

import tf_keras as keras

from tfvae.registry import Registry

PRECISIONS = Registry("precision", field="train.precision", plural="precisions")
for _name in ("float32", "mixed_float16", "mixed_bfloat16"):
    PRECISIONS.register(_name)(lambda name=_name: keras.mixed_precision.Policy(name))


@functools.lru_cache(maxsize=1)
def cpu_has_native_bfloat16() -> bool:
    """Whether this machine's CPU computes bfloat16 in hardware (AVX512-BF16 or AMX-BF16), from
    the flags Linux reports; False where it cannot tell."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve(name: str) -> str:
    """``name`` with ``auto`` replaced by what this machine does best (see module doc)."""
    if name != "auto":
        return name
    import tensorflow as tf
    if not tf.config.list_logical_devices("GPU") and cpu_has_native_bfloat16():
        return "mixed_bfloat16"
    return "float32"


PRECISIONS.register("auto")(lambda: keras.mixed_precision.Policy(resolve("auto")))


def policy(name: str) -> keras.mixed_precision.Policy:
    """The Keras dtype policy ``name`` (one of `PRECISIONS`)."""
    return PRECISIONS.build(name)


@contextlib.contextmanager
def scope(name: str):
    """Layers created inside take the policy ``name`` (Keras reads the global policy when a
    layer is made); the previous global policy is restored on exit."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy(name))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def is_low(name: str) -> bool:
    return policy(name).compute_dtype != "float32"


def wrap_optimizer(optimizer, name: str):
    """``optimizer`` with dynamic loss scaling under ``mixed_float16``, else unchanged."""
    if policy(name).compute_dtype == "float16":
        return keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer


def loss_scale(optimizer):
    """The optimiser's current loss scale, or None where it does not scale the loss."""
    if isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer):
        return optimizer.loss_scale
    return None
