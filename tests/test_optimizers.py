"""Optimisers: tfvae's Adam is Keras's Adam, computed by TensorFlow's fused kernel."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfvae.training import optimizers


def _steps(optimizer, steps=6, seed=0):
    """Variables after ``steps`` updates from the same random gradients."""
    rng = np.random.default_rng(seed)
    variables = [tf.Variable(rng.normal(size=(7, 5)).astype("float32")),
                 tf.Variable(rng.normal(size=(5,)).astype("float32"))]
    for _ in range(steps):
        grads = [tf.constant(rng.normal(size=v.shape).astype("float32") * 3) for v in variables]
        optimizer.apply_gradients(zip(grads, variables))
    return [v.numpy() for v in variables]


# Both compute in float32, in different orders: a few ulps of |w| <= 3 apart per step (1 ulp =
# 2.4e-7). A wrong formula is far outside: without bias correction the first step alone is 3x too
# long (about 0.1 too far), and epsilon = 0.5 moves every step by tens of percent.
TOLERANCE = dict(rtol=1e-5, atol=3e-6)


@pytest.mark.parametrize("kwargs", [{}, {"epsilon": 0.5, "beta_1": 0.5, "beta_2": 0.9},
                                    {"amsgrad": True}, {"weight_decay": 0.01}])
def test_adam_takes_the_same_steps_as_keras_adam(kwargs):
    ours = _steps(optimizers.make("adam", 0.05) if not kwargs else optimizers.Adam(0.05, **kwargs))
    keras_ = _steps(keras.optimizers.Adam(0.05, **kwargs))
    for a, b in zip(ours, keras_):
        np.testing.assert_allclose(a, b, **TOLERANCE)


def test_adam_follows_a_learning_rate_schedule():
    schedule = lambda: keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5)  # noqa: E731
    for a, b in zip(_steps(optimizers.Adam(schedule())), _steps(keras.optimizers.Adam(schedule()))):
        np.testing.assert_allclose(a, b, **TOLERANCE)


def test_adam_updates_a_dense_variable_with_one_fused_op():
    variable = tf.Variable(tf.ones([3, 2]))
    optimizer = optimizers.make("adam", 0.1)
    optimizer.build([variable])
    step = tf.function(lambda g: optimizer.apply_gradients([(g, variable)]))
    graph = step.get_concrete_function(tf.TensorSpec([3, 2])).graph
    ops = {op.type for f in [graph, *graph._functions.values()]
           for op in (f.get_operations() if hasattr(f, "get_operations") else f.graph.get_operations())}
    assert "ResourceApplyAdam" in ops
    assert "AssignSubVariableOp" not in ops  # not Keras's six separate passes


def test_adam_restores_a_checkpoint_written_by_keras_adam(tmp_path):
    variable = tf.Variable(tf.ones([4]))
    keras_adam = keras.optimizers.Adam(0.1)
    keras_adam.apply_gradients([(tf.constant([1.0, -2.0, 3.0, 0.5]), variable)])
    path = tf.train.Checkpoint(optimizer=keras_adam, v=variable).write(str(tmp_path / "ckpt"))
    restored_variable = tf.Variable(tf.zeros([4]))
    ours = optimizers.make("adam", 0.1)
    ours.build([restored_variable])
    tf.train.Checkpoint(optimizer=ours, v=restored_variable).read(path).assert_consumed()
    for optimizer, v in ((keras_adam, variable), (ours, restored_variable)):
        optimizer.apply_gradients([(tf.constant([0.3, 0.3, -1.0, 2.0]), v)])
    np.testing.assert_allclose(restored_variable.numpy(), variable.numpy(), **TOLERANCE)
    assert int(ours.iterations) == 2


def test_adam_under_mixed_precision_updates_the_float32_weights():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        results = []
        for optimizer in (optimizers.make("adam", 0.05), keras.optimizers.Adam(0.05)):
            keras.utils.set_random_seed(1)
            layer = keras.layers.Dense(3)
            x = tf.random.normal([8, 4])
            for _ in range(3):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) ** 2)
                optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables),
                                              layer.trainable_variables))
            assert layer.kernel.dtype == tf.float32
            results.append(layer.kernel.numpy())
        np.testing.assert_allclose(*results, rtol=1e-5, atol=1e-6)
    finally:
        keras.mixed_precision.set_global_policy(previous)
