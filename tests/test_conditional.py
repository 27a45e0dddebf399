"""Labels: which training labels the data keeps, and the conditional VAE q(z|x,y), p(x|z,y)."""
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from commands import command, run_together
from conftest import REPO, make_config
from tfvae.training import validation
from tfvae import data
from tfvae.models import builder
from tfvae.results import evaluation
from tfvae.training import runstate
from tfvae import config as config_lib
from tfvae.errors import ConfigError, DataError


def _train_labels(splits):
    return np.concatenate([np.asarray(y) for _, y in splits.train])


def test_n_labels_per_class_are_kept_seeded_and_the_rest_unlabelled(mnist_arrays):
    config = make_config(data__train_size=6000, data__labels="10", data__batch_size=100)
    splits = data.load(config.data, seed=4, with_labels=True, arrays=mnist_arrays)
    y = _train_labels(splits)
    assert splits.num_classes == 10 and splits.num_labelled == 100
    assert np.array_equal(np.bincount(y[y >= 0], minlength=10), [10] * 10)
    assert np.sum(y == -1) == len(y) - 100
    # The same seed keeps the same images' labels; another seed, others.
    labels = data.keep_labels(mnist_arrays["train"][1][:6000], "10", 10, seed=4)
    assert np.array_equal(labels, data.keep_labels(mnist_arrays["train"][1][:6000], "10", 10, 4))
    assert not np.array_equal(labels, data.keep_labels(mnist_arrays["train"][1][:6000], "10",
                                                       10, 5))
    none = data.load(make_config(data__train_size=2000, data__labels="none").data, seed=0,
                     with_labels=True, arrays=mnist_arrays)
    assert none.num_labelled == 0 and np.all(_train_labels(none) == -1)


@pytest.mark.parametrize("labels, setting, message", [
    (None, "10", "asks for labels, but these images have none"),
    ("range", "500", "class 0 has only"),
    ("negative", "all", r"labels: negative labels other than -1 \(1 of 600, the first at "
                        r"index 3: -5\)"),
])
def test_bad_labels_are_one_line(mnist_arrays, labels, setting, message):
    x, y = mnist_arrays["train"]
    x, y = x[:600], y[:600].copy()
    if labels == "negative":
        y[3] = -5
    config = make_config(data__source="arrays", data__path="unused.npz", data__labels=setting,
                         data__test_size=100, data__validation_size=50, data__batch_size=50)
    with pytest.raises((DataError, ConfigError), match=message) as err:
        arrays = data.from_arrays(x, None if labels is None else y, where="labels")
        data.load(config.data, seed=0, with_labels=True, arrays=arrays)
    assert "\n" not in str(err.value)


def test_a_conditional_model_refuses_what_it_cannot_do():
    for overrides, classes, message in (
            ({}, 0, "needs labelled images of at least 2 classes"),
            ({"model__prior__name": "vamp"}, 10, "would each need a class"),
            ({"data__labels": "10"}, 10, "use data.labels='all'")):
        config = make_config(model__label="observed", **overrides)
        with pytest.raises(ConfigError, match=message) as err:
            builder.build(config, (28, 28, 1), num_classes=classes)
        assert "\n" not in str(err.value)
    annotated = make_config(model__label="component", model__prior__name="mog",
                            model__prior__components=10, data__labels="10",
                            model__latent_dims=(4, 2))
    with pytest.raises(ConfigError, match="it has one latent layer"):
        builder.build(annotated, (28, 28, 1), num_classes=10)


@pytest.fixture(scope="module")
def conditional_mnist(mnist_arrays):
    config = make_config(data__train_size=20000, data__batch_size=100, model__label="observed",
                         model__latent_dims=(8,), model__network__hidden=(256, 256))
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0, with_labels=True, arrays=mnist_arrays)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        num_classes=splits.num_classes)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=25)
    vae.fit(splits.train, epochs=5, verbose=0)
    return vae, splits


def _classifier(mnist_arrays):
    """An independent MNIST classifier (a small MLP on binarised images), trained here."""
    x, y = mnist_arrays["train"]
    x = (x[:30000] > 127).astype(np.float32)
    keras.utils.set_random_seed(1)
    net = keras.Sequential([keras.layers.Flatten(input_shape=(28, 28, 1)),
                            keras.layers.Dense(256, activation="relu"),
                            keras.layers.Dense(10)])
    net.compile(keras.optimizers.Adam(1e-3),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(x, y[:30000], epochs=2, batch_size=128, verbose=0)
    return net


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_the_label_joins_the_encoders_features_with_k_times_hidden_weights(network):
    """``model.label_input='features'``: y (one-hot, K) joins q(z|x,y)'s encoder where it
    flattens x, K x hidden more weights than the unconditional encoder; as K constant image
    channels (the default) an MLP's costs K x H x W x hidden. Either way q depends on y."""
    def build(**overrides):
        config = make_config(model__network__name=network, model__network__hidden=(32,),
                             model__network__conv_channels=(4, 8), **overrides)
        return builder.build(config, (28, 28, 1), num_classes=10)

    plain = build().encoder.count_params()
    joined = build(model__label="observed", model__label_input="features")
    channels = build(model__label="observed")
    assert joined.encoder.count_params() - plain == 10 * 32
    if network == "mlp":
        assert channels.encoder.count_params() - plain == 10 * 28 * 28 * 32
    x = tf.random.uniform([3, 28, 28, 1])
    for model in (joined, channels):
        a = model.given(tf.constant([0, 1, 2])).encode(x).mean()
        b = model.given(tf.constant([5, 5, 5])).encode(x).mean()
        assert not np.allclose(a.numpy(), b.numpy())
    with pytest.raises(ConfigError, match="model.label_input='pixels'"):
        validation.validate(make_config(model__label_input="pixels"))


@pytest.mark.slow
def test_conditional_samples_are_of_the_class_asked_for(conditional_mnist, mnist_arrays):
    """Images drawn with label c (z ~ p(z), the mean of p(x|z, y=c)) are classified as c by a
    classifier that never saw the VAE, far above chance (10%) for every class."""
    vae, _ = conditional_mnist
    labels = np.repeat(np.arange(10), 50)
    images = vae.sample(len(labels), seed=tf.constant([0, 3]), labels=labels).numpy()
    predicted = np.argmax(_classifier(mnist_arrays).predict(images > 0.5, verbose=0), -1)
    accuracy = np.mean(predicted == labels)
    per_class = [np.mean(predicted[labels == c] == c) for c in range(10)]
    # Measured: 75% overall, every class 64-98%, after 5 epochs.
    assert accuracy > 0.6 and min(per_class) > 0.4, (accuracy, per_class)


@pytest.mark.slow
def test_the_label_matters_to_the_likelihood(conditional_mnist):
    """log p(x | y) is higher with the image's own label than with a wrong one, for most test
    images: the model uses y (its IS bound with the labels of each batch)."""
    vae, splits = conditional_mnist
    x, y = next(iter(splits.test))
    x, y = x[:200], y[:200]
    right = vae.log_likelihood(x, 100, seed=(0, 1), labels=y).numpy()
    wrong = vae.log_likelihood(x, 100, seed=(0, 1), labels=(y + 1) % 10).numpy()
    assert np.mean(right > wrong) > 0.9 and np.mean(right - wrong) > 5.0
    result = evaluation.evaluate(vae, splits.test.take(1), iw_samples=50, progress=None)
    assert result["given_labels"] and result["elbo"]["mean"] < result["log_likelihood"]["mean"]


@pytest.mark.slow
@pytest.mark.parametrize("latent_dims", ["8,", "8,4"])
def test_a_conditional_run_from_the_commands(tmp_path, fashion_idx_dir, latent_dims):
    workdir = str(tmp_path / "cvae")
    out = subprocess.run(
        [*command("train"), "--config", os.path.join(REPO, "configs", "default.py"),
         "--workdir", workdir, "--config.data.source=idx",
         f"--config.data.idx_dir={fashion_idx_dir}", "--config.data.test_size=300",
         "--config.data.validation_size=300", "--config.data.train_size=1024",
         "--config.eval.iw_samples=20", "--config.eval.iw_examples=100",
         "--config.model.label=observed", "--config.model.network.hidden=64,",
         f"--config.model.latent_dims={latent_dims}", "--config.train.epochs=2"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "log p(x|y) >=" in out.stdout
    test = json.load(open(os.path.join(workdir, "results.json")))["test"]
    assert test["given_labels"] is True
    assert os.path.getsize(os.path.join(workdir, "classes.png")) > 0
    if "," in latent_dims.rstrip(","):  # several layers: each layer's rate, what each controls
        assert len(test["rates"]) == 2 and os.path.getsize(os.path.join(workdir, "layers.png"))
    m = tf.saved_model.load(os.path.join(workdir, "saved_model"))
    images = m.sample_conditional(tf.constant([3, 3, 7]), tf.constant(1, tf.int64))["images"]
    assert images.shape == (3, 28, 28, 1)
    drawn = m.sample(tf.constant(5))
    assert drawn["images"].shape == (5, 28, 28, 1) and drawn["labels"].shape == (5,)
    ll = m.log_likelihood(tf.zeros([2, 28, 28, 1]), tf.constant([0, 1]), tf.constant(10))
    assert np.all(np.isfinite(ll["log_likelihood"].numpy()))
    if latent_dims == "8,":
        return  # the commands below go through the same functions at any depth: once is enough
    png, refused = str(tmp_path / "classes.png"), tmp_path / "refused.png"
    sampled, bad, evaluated = run_together(
        [*command("sample"), "--workdir", workdir, "--labels=3,5", "--num=4", f"--out={png}"],
        [*command("sample"), "--workdir", workdir, "--labels=12", f"--out={refused}"],
        [*command("evaluate"), "--workdir", workdir, "--iw_samples=10", "--examples=50"])
    assert sampled.returncode == 0 and os.path.getsize(png) > 0, sampled.stderr[-2000:]
    last_line = bad.stderr.strip().splitlines()[-1]
    assert bad.returncode == 1 and "not a class of this model" in last_line, bad.stderr[-2000:]
    assert not refused.exists()
    assert evaluated.returncode == 0 and "log p(x|y)" in evaluated.stdout, evaluated.stderr[-2000:]


# ---------------------------------------------------------------------- M2, semi-supervised
def _m2(image_shape=(28, 28, 1), classes=10, **overrides):
    settings = dict(model__label="latent", data__labels="10", model__latent_dims=(4,),
                    model__network__hidden=(64,))
    return builder.build(make_config(**(settings | overrides)), image_shape,
                         num_classes=classes, num_labelled=100, num_train=1000)


@pytest.mark.parametrize("with_diagnostics", [False, True])
def test_m2_reports_log_p_x_with_y_summed_out_not_given(with_diagnostics):
    """M2's importance-sampled bound sums y out (its log_likelihood without labels), so the
    evaluation must call it log p(x), never log p(x|y), with or without diagnostics (tfvae-train's
    own evaluation runs without them and printed log p(x|y))."""
    keras.utils.set_random_seed(0)
    vae = _m2()
    images = tf.cast(tf.random.uniform([8, 28, 28, 1]) < 0.3, tf.float32)
    test = tf.data.Dataset.from_tensor_slices((images, tf.range(8) % 10)).batch(8)
    result = evaluation.evaluate(vae, test, iw_samples=4, with_diagnostics=with_diagnostics,
                                 progress=None)
    assert "given_labels" not in result
    assert "log p(x) >=" in evaluation.summary(result)
    expected = tf.reduce_mean(vae.log_likelihood(images, 4, seed=(0, 0)))
    assert abs(result["log_likelihood"]["mean"] - float(expected)) < 1e-3


@pytest.mark.parametrize("latent_dims", [(4,), (4, 3)])
def test_the_unlabelled_bound_sums_the_labelled_bounds_over_q_y(latent_dims):
    """U(x) = sum_y q(y|x) L(x, y) + H(q(y|x)), the enumeration done in one batched pass,
    against an explicit loop over the classes, with S = 2,000 draws, within 4 standard errors
    (one layer: analytic KL, only the distortion is sampled; two layers (M2 over a hierarchy):
    the lower layer's KL is taken at sampled parents, and the log-weights' spread bounds it)."""
    keras.utils.set_random_seed(3)
    vae = _m2(model__latent_dims=latent_dims)
    vae.num_samples = 2000
    x = tf.constant((np.random.default_rng(0).random((3, 28, 28, 1)) < 0.3).astype(np.float32))
    u = vae.label.unlabelled_terms(vae, x, seed=tf.constant([1, 2]))
    q = tf.nn.softmax(vae.classify(x)).numpy()                                  # [B, K]
    per_class = np.stack([vae.labelled_terms(x, tf.fill([3], k), seed=tf.constant([3, k]))
                          .elbo.numpy() for k in range(10)], -1)                # [B, K]
    entropy = -np.sum(q * np.log(q), -1)
    direct = np.sum(q * per_class, -1) + entropy
    given = vae.given(tf.zeros([3], tf.int32))
    if len(latent_dims) == 1:
        z = given.encode(x).sample(2000, seed=(4, 5))
        spread = np.std(given.likelihood(z).log_prob(x).numpy(), 0) / np.sqrt(2000)
    else:
        spread = np.std(np.asarray(given.log_weights(x, 2000, seed=(4, 5))), 0) / np.sqrt(2000)
    np.testing.assert_array_less(np.abs(u.elbo.numpy() - direct), 4 * np.sqrt(2) * spread + 1e-3)
    np.testing.assert_allclose(u.elbo, -(u.distortion + u.rate), rtol=1e-6)
    # Each layer's share of the rate (y's KL counted with the top layer's), summing to R.
    vae.num_samples = 1
    for estimator in ("enumerate", "score_function", "gumbel_softmax"):
        t = vae.label.unlabelled_terms(vae, x, seed=tf.constant([5, 6]), estimator=estimator)
        assert len(t.rates) == len(latent_dims)
        np.testing.assert_allclose(tf.add_n(list(t.rates)), t.rate, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("network", ["mlp", "cnn", "gated_mlp"])
def test_enumeration_computes_the_x_path_once_and_equals_the_tiled_batch(network, monkeypatch):
    """Enumerating K classes tiles the batch K times; q(z|x,y) computes what depends on x alone
    (the layers up to the join and the x part of the next dense layer) once per image
    (`networks.call_joined`). Its posterior, U(x) and the gradients of U equal those of the
    tiled batch to float32 round-off, and the encoder is never run on the tiled batch. A gated
    layer after the join has no such split: that net runs on the tiled batch, to the same
    values."""
    from tfvae.inference import label_estimators
    keras.utils.set_random_seed(0)
    vae = _m2(model__network__name=network, model__network__conv_channels=(4, 8),
              model__label_input="features")
    b, k = 5, 10
    x = tf.constant((np.random.default_rng(1).random((b, 28, 28, 1)) < 0.3).astype(np.float32))
    tiled, labels = tf.tile(x, [k, 1, 1, 1]), tf.repeat(tf.range(k), b)

    def bound(copies):
        with tf.GradientTape() as tape:
            t = label_estimators._bound_given(vae, tiled, labels, 1.0, False,
                                              seed=tf.constant([1, 2]), copies=copies)
            loss = -tf.reduce_mean(t.elbo)
        grads = tape.gradient(loss, vae.encoder.trainable_variables
                              + vae.decoder.trainable_variables)
        q = vae.given(labels, copies=copies).encode(tiled)
        return [q.mean(), q.stddev(), t.elbo] + grads

    tiled_once = bound(1)
    real_call = vae.encoder.call
    if network != "gated_mlp":
        monkeypatch.setattr(vae.encoder, "call", lambda *a, **kw: pytest.fail(
            "the encoder ran on the tiled batch"))
    shared = bound(k)
    assert len(shared) == 3 + len(vae.encoder.trainable_variables
                                   + vae.decoder.trainable_variables)
    for a, c in zip(tiled_once, shared):
        np.testing.assert_allclose(c, a, rtol=2e-5, atol=2e-5)
    # Training's unlabelled bound takes the shared path too.
    vae.label.unlabelled_terms(vae, x, seed=tf.constant([3, 4]))
    monkeypatch.setattr(vae.encoder, "call", real_call)


def test_the_training_objective_weighs_the_terms_as_the_paper():
    """Per step, J^alpha / N of Kingma et al. (2014), eq. 9, with J^alpha = sum_l -L(x, y)
    + sum_u -U(x) + alpha E_l[-log q(y|x)] (E a mean over the labelled images, alpha = 0.1 N):
    mean_u -U + (N_l / N) mean_l -L + (alpha / N) mean_l -log q(y|x), alpha / N =
    ``classifier_weight``. The authors' code (dpkingma/nips14-ssl, learn_yz_x_ss.py) weighs
    each labelled log q(y|x) by alpha N / N_l in its sum over the data set: the same."""
    vae = _m2(model__classifier_weight=0.3)                 # N_l = 100 of N = 1,000
    rng = np.random.default_rng(1)
    x_u = tf.constant((rng.random((6, 28, 28, 1)) < 0.3).astype(np.float32))
    x_l = tf.constant((rng.random((4, 28, 28, 1)) < 0.3).astype(np.float32))
    y_l = tf.constant([0, 3, 3, 9])
    keras.utils.set_random_seed(7)
    t = vae.training_terms((x_u, (x_l, y_l)), beta=1.0)
    keras.utils.set_random_seed(7)                          # the same draws, term by term
    u = vae.label.unlabelled_terms(vae, x_u, 1.0, training=True)
    lab = vae.labelled_terms(x_l, y_l, 1.0, training=True)
    logits = vae.classify(x_l).numpy().astype(np.float64)
    log_q = logits - np.log(np.sum(np.exp(logits), -1, keepdims=True))
    ce = -np.mean(log_q[np.arange(4), y_l.numpy()])
    expected = float(u.loss) + 100 / 1000 * float(lab.loss) + 0.3 * ce
    np.testing.assert_allclose(float(t.loss), expected, rtol=1e-5)
    np.testing.assert_allclose(float(t.extras["classification_loss"]), ce, rtol=1e-5)
    # The labelled bound weighed as the unlabelled one, as the public re-implementations do.
    equal = _m2(model__classifier_weight=0.3, model__labelled_bound_weight="equal")
    equal.set_weights(vae.get_weights())
    keras.utils.set_random_seed(7)
    t_equal = equal.training_terms((x_u, (x_l, y_l)), beta=1.0)
    np.testing.assert_allclose(float(t_equal.loss), float(u.loss) + float(lab.loss) + 0.3 * ce,
                               rtol=1e-5)
    with pytest.raises(ConfigError, match="labelled_bound_weight='half' is not one of"):
        _m2(model__labelled_bound_weight="half")
    # Per labelled image (x N_l), as tfvae read it before; a config stored then reads back so.
    per_labelled = _m2(model__classifier_weight=0.3, model__classifier_weight_per_labelled=True)
    assert per_labelled.label.classifier_weight == pytest.approx(0.3 * 100)
    stored = runstate.config_dict(make_config(model__label="latent"))
    del stored["model"]["classifier_weight_per_labelled"]
    assert config_lib.upgrade(stored)["model"]["classifier_weight_per_labelled"] is True
    # A model without M2's term reads back as today's (its resume sees no config change).
    stored["model"]["label"] = "none"
    assert "classifier_weight_per_labelled" not in config_lib.upgrade(stored)["model"]


def test_the_bounds_of_a_small_model_against_its_exact_likelihood():
    """A 1-D latent and 2 x 2 binary images: log p(x) = log sum_y p(y) int p(z) p(x|z,y) dz by
    quadrature. The unlabelled bound U(x) lies below it; the importance-sampled estimate with y
    enumerated converges to it (k = 5,000, within 0.05 nats)."""
    keras.utils.set_random_seed(5)
    vae = _m2(image_shape=(2, 2, 1), classes=3, model__latent_dims=(1,),
              model__network__hidden=(8,), data__pixels="binary")
    images = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 0, 1]], np.float32).reshape(3, 2, 2, 1)
    x = tf.constant(images)
    grid = np.linspace(-12.0, 12.0, 24001, dtype=np.float32)
    log_pz = -0.5 * grid ** 2 - 0.5 * np.log(2 * np.pi)
    exact = []
    for image in images:
        per_class = []
        for y in range(3):
            log_px = vae.likelihood(tf.constant(grid[:, None]), labels=tf.fill(
                [len(grid)], y)).log_prob(tf.constant(np.repeat(image[None], len(grid), 0))).numpy()
            f = np.exp(log_px + log_pz)
            per_class.append(np.log(np.trapezoid(f, grid)) + np.log(1 / 3))
        exact.append(np.logaddexp.reduce(per_class))
    exact = np.array(exact)
    vae.num_samples = 5000
    u = vae.label.unlabelled_terms(vae, x, seed=tf.constant([0, 1])).elbo.numpy()
    assert np.all(u < exact)
    estimate = vae.log_likelihood(x, 5000, seed=(0, 9)).numpy()
    np.testing.assert_allclose(estimate, exact, atol=0.05)


@pytest.mark.slow
def test_m2_learns_to_classify_from_100_labels(mnist_arrays):
    """10 labels per class and 10,000 unlabelled MNIST images, 3 epochs: the classifier q(y|x)
    is far better than chance on the test images (measured: 27% error). The labels weigh 100x
    the paper's (classifier_weight 10 = 0.1 per labelled image): at the paper's weight 300
    steps leave the classifier near chance; it learns over hundreds of epochs."""
    config = make_config(data__train_size=10000, data__batch_size=100, data__labels="10",
                         model__label="latent", model__latent_dims=(16,),
                         model__network__hidden=(256,), model__classifier_weight=10.0)
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0, with_labels=True, arrays=mnist_arrays)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch,
                        num_classes=10, num_labelled=splits.num_labelled,
                        num_train=splits.num_train)
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=25)
    train = tf.data.Dataset.zip((splits.train.map(lambda x, y: x).repeat(), splits.labelled))
    vae.fit(train, steps_per_epoch=splits.steps_per_epoch, epochs=3, verbose=0)
    result = evaluation.evaluate(vae, splits.test.take(2), progress=None)
    assert result["classification_error"]["mean"] < 0.4, result["classification_error"]
    assert result["elbo"]["mean"] > result["elbo_labelled"]["mean"] - 50  # the same scale


def test_semi_supervised_configs_that_cannot_work_fail_in_one_line():
    for overrides, message in (({"data__labels": "none"}, "needs some labelled images"),
                               ({"estimator__name": "iwae"}, "estimator.name='reparameterized'")):
        with pytest.raises(ConfigError, match=message) as err:
            _m2(**overrides)
        assert "\n" not in str(err.value)


@pytest.mark.slow
def test_a_semi_supervised_run_from_the_commands(tmp_path, fashion_idx_dir):
    workdir = str(tmp_path / "m2")
    out = subprocess.run(
        [*command("train"), "--config", os.path.join(REPO, "configs", "default.py"),
         "--workdir", workdir, "--config.data.source=idx",
         f"--config.data.idx_dir={fashion_idx_dir}", "--config.data.test_size=300",
         "--config.data.validation_size=300", "--config.data.train_size=1024",
         "--config.data.labels=5", "--config.eval.iw_samples=10",
         "--config.eval.iw_examples=50", "--config.model.label=latent",
         "--config.model.network.hidden=64,", "--config.train.epochs=2",
         # 0.1 per labelled image (50x the paper's weight), so that 2 epochs learn something
         "--config.model.classifier_weight=0.1",
         "--config.model.classifier_weight_per_labelled=True"],
        capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "classification error" in out.stdout
    test = json.load(open(os.path.join(workdir, "results.json")))["test"]
    assert 0.0 <= test["classification_error"]["mean"] < 0.9
    with open(os.path.join(workdir, "metrics.csv")) as f:
        assert "val_classification_error" in f.readline()
    m = tf.saved_model.load(os.path.join(workdir, "saved_model"))
    assert m.classify(tf.zeros([2, 28, 28, 1]))["probabilities"].shape == (2, 10)
    out = subprocess.run([*command("evaluate"), "--workdir", workdir, "--iw_samples=5",
                          "--examples=50"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "classification error" in out.stdout, out.stderr[-2000:]


# ---------------------------------------------------------------------- annotated mixtures
@pytest.mark.slow
def test_annotated_mixture_components_generate_their_class(mnist_arrays):
    """A MoG prior of 10 components tied to the classes by 20 labels per class (the other
    images unlabelled): sampled from component c, the model's images are classified as c by an
    independent classifier, for most classes; and the component responsibilities classify
    test images well above chance. Without annotation the components are unordered."""
    config = make_config(data__train_size=10000, data__batch_size=100, data__labels="20",
                         model__prior__name="mog", model__prior__components=10,
                         model__label="component", model__latent_dims=(8,),
                         model__network__hidden=(256, 256))
    keras.utils.set_random_seed(0)
    splits = data.load(config.data, seed=0, with_labels=True, arrays=mnist_arrays)
    vae = builder.build(config, splits.image_shape, splits.steps_per_epoch, num_classes=10,
                        num_labelled=splits.num_labelled, num_train=splits.num_train)
    assert [n.name for n in vae.nodes] == ["y", "z"] and vae.components_are_classes
    vae.compile(keras.optimizers.Adam(1e-3), steps_per_execution=25)
    train = tf.data.Dataset.zip((splits.train.map(lambda x, y: x).repeat(), splits.labelled))
    vae.fit(train, steps_per_epoch=splits.steps_per_epoch, epochs=4, verbose=0)
    _, loc, scale = vae.prior.mixture_parameters()
    rng = np.random.default_rng(0)
    z = loc.numpy()[:, None, :] + np.broadcast_to(scale.numpy(), loc.shape)[:, None, :] * \
        rng.standard_normal((10, 40, 8))
    images = vae.likelihood(tf.constant(z.reshape(400, 8), tf.float32)).mean().numpy()
    predicted = np.argmax(_classifier(mnist_arrays).predict(images > 0.5, verbose=0), -1)
    most = [np.bincount(predicted[c * 40:(c + 1) * 40], minlength=10).argmax() for c in range(10)]
    assert sum(m == c for c, m in enumerate(most)) >= 7, most
    result = evaluation.evaluate(vae, splits.test.take(2), progress=None)
    assert result["classification_error"]["mean"] < 0.6  # chance: 0.9; measured 0.47


# ---------------------------------------------------------------------- estimators for y
def _classifier_gradient(vae, x, estimator, seed):
    with tf.GradientTape() as tape:
        terms = vae.label.unlabelled_terms(vae, x, training=False, seed=seed, estimator=estimator)
    grads = tape.gradient(terms.loss, vae.classifier.trainable_variables)
    return tf.concat([tf.reshape(g, [-1]) for g in grads], 0), tf.reduce_mean(terms.elbo)


def test_the_score_function_estimates_of_u_and_its_gradient_are_unbiased():
    """Two draws of y, each the other's baseline: over 600 independent estimates, the mean
    bound and the mean classifier gradient (projected on random directions) agree with
    enumeration's (whose own z-noise is averaged over 200 estimates), within 4 standard
    errors; the Gumbel-softmax relaxation is not held to this (it is biased)."""
    keras.utils.set_random_seed(7)
    vae = _m2()
    x = tf.constant((np.random.default_rng(1).random((4, 28, 28, 1)) < 0.3).astype(np.float32))
    one = tf.function(lambda est, seed: _classifier_gradient(vae, x, est, seed))
    draws = {est: [one(est, tf.constant([i, 17])) for i in range(n)]
             for est, n in (("enumerate", 200), ("score_function", 600))}
    directions = np.random.default_rng(2).standard_normal((3, int(draws["enumerate"][0][0].shape[0])))
    for k in range(2):  # 0: the gradient (projected), 1: the bound
        values = {est: np.array([(directions @ g.numpy()) if k == 0 else [float(u)]
                                 for g, u in d]) for est, d in draws.items()}
        mean = {est: v.mean(0) for est, v in values.items()}
        se = np.sqrt(sum(v.var(0) / len(v) for v in values.values()))
        np.testing.assert_array_less(np.abs(mean["score_function"] - mean["enumerate"]),
                                     4 * se + 1e-6)
