"""The figures of a trained model, from the model and its data (`tfvae.results.plots` draws them from
arrays): samples, reconstructions, traversals, the latent space and the training curves."""
import os

import numpy as np
import tensorflow as tf

from tfvae.results import evaluation, plots


def save(model, splits, workdir, history):
    """Samples, reconstructions, traversals, latent space and curves (where an epoch was
    trained), as PNG files; for data that are not images (``data.features``), the latent
    space and curves alone."""
    if not plots.is_image(splits.image_shape):
        z, y = evaluation.posterior_means(model, splits.test, max_examples=2000)
        paths = [plots.latent_scatter(z, os.path.join(workdir, "latent.png"), labels=y,
                                      class_names=splits.class_names),
                 plots.training_curves(history, os.path.join(workdir, "curves.png"))]
        return [p for p in paths if p]
    paths = []
    paths.append(plots.image_grid(model.sample(64).numpy(), os.path.join(workdir, "samples.png"),
                                  title="Samples: mean of p(x|z), z ~ p(z)"))
    x, labels = next(iter(splits.test))
    x, labels = x[:16], labels[:16]
    recon = model.reconstruct(x, labels)
    paths.append(plots.reconstructions(x.numpy(), recon.numpy(),
                                       os.path.join(workdir, "reconstructions.png")))
    if model.samples_by_class:
        paths.append(plots.labelled_grid(
            class_grid(model), os.path.join(workdir, "classes.png"),
            title="p(x | z, y): one z per row (its style), one class y per column",
            row_labels=[f"z{r + 1}" for r in range(8)],
            col_labels=list(splits.class_names or range(model.num_classes))))
    z, y = evaluation.posterior_means(model, splits.test, max_examples=2000)
    zs, ys = evaluation.encode_dataset(model, splits.test, 2000, sample=True)
    # Traverse the latent dimensions that vary most over the data (the active ones), each over
    # the range its codes occupy (quantiles of the aggregated posterior q(z)).
    dims = np.argsort(-np.var(z, axis=0))[: min(8, model.latent_dim)]
    labels = {}
    if getattr(model.latents, "codes", None):  # a discrete code: each bit / group's values
        code = model.latents.codes[0]
        dims, values, base = discrete_traversal(code, z, zs)
        labels = ({"axis_label": "the bit set to 0, then 1 (the others: one image's code)",
                   "row_name": "bit "} if code.name == "bernoulli" else
                  {"axis_label": "the group's class 0 .. K-1 (the others: one image's code)",
                   "row_name": "group "})
    else:
        values = plots.traversal_values(zs, dims)
        base = np.tile(z[:1], (len(dims), values.shape[1], 1)).astype(np.float32)
        for i, d in enumerate(dims):
            base[i, :, d] = values[i]
    along = (None if y is None or not model.networks_read_labels else
             np.full(base.shape[:2], y[0]).reshape(-1))
    images = model.likelihood(tf.constant(base.reshape(-1, base.shape[-1])),
                              labels=along).mean().numpy()
    images = images.reshape(base.shape[:2] + images.shape[1:])
    paths.append(plots.traversals(images, values, dims, os.path.join(workdir, "traversals.png"),
                                  **labels))
    if len(model.latent_dims) > 1:
        resampled = layer_resamples(model.given(
            tf.range(4) % model.num_classes if model.networks_read_labels else None), rows=4)
        paths.append(plots.labelled_grid(
            resampled, os.path.join(workdir, "layers.png"),
            title="What each layer controls: each row resamples one layer, the others fixed",
            row_labels=[f"z{l + 1}, draw {r + 1}" for l in range(len(model.latent_dims))
                        for r in range(4)]))
    mixture = model.prior.mixture_parameters()
    if mixture is not None and int(mixture[1].shape[0]) <= 20:
        names = list(splits.class_names or range(int(mixture[1].shape[0])))
        annotated = model.components_are_classes
        paths.append(plots.labelled_grid(
            component_samples(model), os.path.join(workdir, "components.png"),
            title="What each prior component generates: z from component c (a row)"
            + (", tied to class c by the labels" if annotated else ""),
            row_labels=[f"c={names[c]}" if annotated else f"c={c}"
                        for c in range(len(names))]))
    if tuple(model.latent_dims) == (2,):
        paths.append(plots.latent_density(
            [{"name": type(model.prior).__name__, "z": zs, "labels": ys,
              "log_density": lambda pts: model.prior.log_prob(pts).numpy()}],
            os.path.join(workdir, "latent_density.png"),
            title="Prior density and aggregated posterior (test)", class_names=splits.class_names))
    else:
        paths.append(plots.latent_scatter(z, os.path.join(workdir, "latent.png"), labels=y,
                                          class_names=splits.class_names))
    paths.append(plots.training_curves(history, os.path.join(workdir, "curves.png")))
    paths.append(plots.gradient_variance_curves(history,
                                                os.path.join(workdir, "gradient_variance.png")))
    return [p for p in paths if p]  # no curves for a run that trained no epoch


def layer_resamples(model, rows: int = 4, cols: int = 8, seed: int = 0) -> np.ndarray:
    """For each latent layer l (bottom first) and each of ``rows`` draws z ~ p(z): ``cols``
    images decoded from z with z_l alone drawn again from p(z_l | z_{l+1}) (p(z_L) at the top),
    every other layer as drawn. ``[L * rows, cols, H, W, C]``: what varies along a row is what
    layer l controls."""
    base = model.split(model.sample_latents(rows, seed=tf.constant([seed, 0])))
    out = []
    for l in range(len(model.latent_dims)):
        row_images = []
        for c in range(cols):
            draw_seed = tf.constant([seed, 1 + l * cols + c])
            if l == len(model.latent_dims) - 1:
                fresh = model.prior.sample(rows, seed=draw_seed)
            else:
                fresh = model.conditional_priors(base)[l].sample(seed=draw_seed)
            z = tuple(fresh if i == l else t for i, t in enumerate(base))
            row_images.append(model.likelihood(z).mean().numpy())
        out.append(np.stack(row_images, 1))                      # [rows, cols, H, W, C]
    return np.concatenate(out, 0)


def class_grid(model, rows: int = 8, seed: int = 0) -> np.ndarray:
    """A conditional model's images of every class for the same draws z ~ p(z):
    ``[rows, K, H, W, C]``, row r decoding one z with each label in turn."""
    z = model.sample_latents(rows, seed=tf.constant([seed, 0]))                  # [R, L]
    k = model.num_classes
    z_all = tf.repeat(z, k, axis=0)                                              # [R * K, L]
    images = model.likelihood(z_all, labels=tf.tile(tf.range(k), [rows])).mean().numpy()
    return images.reshape((rows, k) + images.shape[1:])


def component_samples(model, cols: int = 8, seed: int = 0) -> np.ndarray:
    """A mixture prior's ``[K, cols, H, W, C]``: each row decodes ``cols`` draws from one
    component."""
    _, loc, scale = model.prior.mixture_parameters()
    scale = tf.broadcast_to(scale, tf.shape(loc))
    k, d = int(loc.shape[0]), int(loc.shape[1])
    eps = tf.random.stateless_normal([k, cols, d], seed=[seed, 11])
    z = tf.reshape(loc[:, None, :] + scale[:, None, :] * eps, [k * cols, d])
    images = model.likelihood(z).mean().numpy()
    return images.reshape((k, cols) + images.shape[1:])


def discrete_traversal(code, means, samples, rows: int = 8):
    """Traversals of a discrete code (its bottom layer): from the first image's code (a draw
    of q), each row sets one bit to 0 and 1 (the bits that vary most over the data), or one
    categorical group to each of its K classes. Returns ``(dims, values, codes)``."""
    width = code.width
    if code.name == "bernoulli":
        dims = np.argsort(-np.var(means[:, :width], axis=0))[:rows]
        values = np.tile([[0.0, 1.0]], (len(dims), 1))
        codes = np.tile(samples[:1], (len(dims), 2, 1)).astype(np.float32)
        for i, d in enumerate(dims):
            codes[i, :, d] = values[i]
        return dims, values, codes
    k = code.classes
    spread = np.var(means[:, :width], axis=0).reshape(-1, k).sum(1)
    dims = np.argsort(-spread)[:rows]
    codes = np.tile(samples[:1], (len(dims), k, 1)).astype(np.float32)
    for i, g in enumerate(dims):
        codes[i, :, g * k:(g + 1) * k] = np.eye(k)
    return dims, np.tile(np.arange(k, dtype=np.float64), (len(dims), 1)), codes

