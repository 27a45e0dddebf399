"""Measuring a trained model on a data set: ELBO, D, R, importance-sampled log-likelihood, AU.

All functions are pure functions of a model and a `tf.data` pipeline of image batches (or
``(images, labels)`` batches); results are averages per example, in nats.
"""
import sys
from typing import Dict

import numpy as np
import tensorflow as tf

from tfvae import posteriors
from tfvae.progress import Progress


def _images(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def elbo(model, dataset) -> Dict[str, float]:
    """Mean ELBO, distortion D, rate R over a data set (beta = 1)."""
    step = tf.function(lambda x: model.elbo_terms(x), reduce_retracing=True)
    totals, n = {"elbo": 0.0, "distortion": 0.0, "rate": 0.0}, 0
    for batch in dataset:
        terms = step(_images(batch))
        for key in totals:
            totals[key] += float(tf.reduce_sum(getattr(terms, key)))
        n += int(terms.elbo.shape[0])
    return {key: value / n for key, value in totals.items()} | {"num_examples": n}


def _count(dataset) -> int:
    n = int(dataset.cardinality())
    if n >= 0:
        return n
    return sum(1 for _ in dataset)


def log_likelihood(model, dataset, num_samples: int, num_examples: int = 0,
                   batch_size: int = 100, progress=sys.stderr) -> Dict[str, float]:
    """Mean importance-sampled bound on log p(x) with k = ``num_samples`` over the first
    ``num_examples`` examples (0 = all); see `VAE.log_likelihood`. Reports images/s and time
    left to ``progress`` (a stream; None for silence)."""
    ds = dataset.unbatch()
    if num_examples:
        ds = ds.take(num_examples)
    ds = ds.batch(batch_size)
    total_examples = _count(ds.unbatch()) if progress is not None else 0
    bar = Progress(total_examples, f"log p(x), k={int(num_samples)}", stream=progress)
    total, n = 0.0, 0
    for batch in ds:
        values = model.log_likelihood(_images(batch), num_samples)
        total += float(tf.reduce_sum(values))
        n += int(values.shape[0])
        bar.update(int(values.shape[0]))
    bar.close()
    return {"log_likelihood": total / n, "iw_samples": int(num_samples), "iw_examples": n}


def encode_dataset(model, dataset, max_examples: int = 0, sample: bool = False):
    """Posterior means, or one sample z ~ q(z|x) each (``sample=True``: draws from the aggregated
    posterior q(z)), ``[N, L]``; and labels ``[N]`` where the data set has them, else None."""
    codes, labels, n = [], [], 0
    for batch in dataset:
        q = model.encode(_images(batch), training=False)
        codes.append((q.sample() if sample else posteriors.code(q)).numpy())
        if isinstance(batch, (tuple, list)):
            labels.append(np.asarray(batch[1]))
        n += len(codes[-1])
        if max_examples and n >= max_examples:
            break
    z = np.concatenate(codes)[: max_examples or None]
    y = np.concatenate(labels)[: max_examples or None] if labels else None
    return z, y


def posterior_means(model, dataset, max_examples: int = 0):
    """Posterior means ``[N, L]`` (and labels ``[N]`` where the data set has them)."""
    return encode_dataset(model, dataset, max_examples)


def active_units(model, dataset, threshold: float = 0.01) -> int:
    """Latent dimensions whose posterior mean varies over the data: Cov_x(E_q[z_d]) > threshold
    (Burda et al., 2016). Dimensions below it are collapsed onto the prior."""
    z, _ = posterior_means(model, dataset)
    return int(np.sum(np.var(z, axis=0) > threshold))


def evaluate(model, dataset, iw_samples: int = 0, iw_examples: int = 0,
             iw_batch_size: int = 100, progress=sys.stderr) -> Dict[str, float]:
    """ELBO, D, R, active units and (if ``iw_samples``) the importance-sampled log-likelihood;
    both bounds also in bits per dimension, -log p / (D ln 2) with D pixels x channels."""
    out = elbo(model, dataset)
    out["active_units"] = active_units(model, dataset)
    dims = int(np.prod(model.image_shape))
    out["elbo_bits_per_dim"] = float(-out["elbo"] / (dims * np.log(2.0)))
    if iw_samples:
        out |= log_likelihood(model, dataset, iw_samples, iw_examples, iw_batch_size, progress)
        out["bits_per_dim"] = float(-out["log_likelihood"] / (dims * np.log(2.0)))
    return out
