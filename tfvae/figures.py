"""The figures of a trained model, from the model and its data (`tfvae.plots` draws them from
arrays): samples, reconstructions, traversals, the latent space and the training curves."""
import os

import numpy as np
import tensorflow as tf

from tfvae import evaluation, plots


def save(model, splits, workdir, history):
    """Samples, reconstructions, traversals, latent space and curves, as PNG files."""
    paths = []
    paths.append(plots.image_grid(model.sample(64).numpy(), os.path.join(workdir, "samples.png"),
                                  title="Samples: mean of p(x|z), z ~ p(z)"))
    x, labels = next(iter(splits.test))
    x = x[:16]
    paths.append(plots.reconstructions(x.numpy(), model.reconstruct(x).numpy(),
                                       os.path.join(workdir, "reconstructions.png")))
    z, y = evaluation.posterior_means(model, splits.test, max_examples=2000)
    zs, ys = evaluation.encode_dataset(model, splits.test, 2000, sample=True)
    # Traverse the latent dimensions that vary most over the data (the active ones), each over
    # the range its codes occupy (quantiles of the aggregated posterior q(z)).
    dims = np.argsort(-np.var(z, axis=0))[: min(8, model.latent_dim)]
    values = plots.traversal_values(zs, dims)
    base = np.tile(z[:1], (len(dims), values.shape[1], 1)).astype(np.float32)
    for i, d in enumerate(dims):
        base[i, :, d] = values[i]
    images = model.likelihood(tf.constant(base)).mean().numpy()
    paths.append(plots.traversals(images, values, dims, os.path.join(workdir, "traversals.png")))
    if model.latent_dim == 2:
        paths.append(plots.latent_density(
            [{"name": type(model.prior).__name__, "z": zs, "labels": ys,
              "log_density": lambda pts: model.prior.log_prob(pts).numpy()}],
            os.path.join(workdir, "latent_density.png"),
            title="Prior density and aggregated posterior (test)", class_names=splits.class_names))
    else:
        paths.append(plots.latent_scatter(z, os.path.join(workdir, "latent.png"), labels=y,
                                          class_names=splits.class_names))
    paths.append(plots.training_curves(history, os.path.join(workdir, "curves.png")))
    return paths
