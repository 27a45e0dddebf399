"""The variance of an estimator's gradient: repeated estimates on one model and one batch, the
measure every paper on discrete-code estimators plots over training (e.g. Dong, Mnih and
Tucker 2020, Fig. 5: the variance of the inference network's gradient, averaged over its
parameters).

Any `estimators.Estimator` may be measured on any model it accepts, not only the model's own:
that compares estimators at the same parameters. Control variates are applied in their current
state and not updated.
"""
from typing import Dict

import numpy as np
import tensorflow as tf

from tfvae.errors import ConfigError
from tfvae.inference import estimators as estimators_lib


def estimate_fn(model, x, estimator=None, group: str = "inference", labels=None, view=None):
    """A `tf.function` of no arguments giving one estimate ``[P]`` of the gradient of
    ``group``'s loss (its ``group_losses`` entry, else the surrogate loss) with respect to that
    group's P parameters, on the batch ``x`` at the model's current beta (``view``: the model
    as the estimator sees it, e.g. `WithSamples`). Build it once and call it as often as needed
    (each call is a fresh draw)."""
    estimator = estimator or model.estimator
    variables = model.parameter_groups()[group]
    given = (view or model).given(labels) if labels is not None else (view or model)

    @tf.function
    def one():
        with tf.GradientTape() as tape:
            terms = estimator.terms(given, x, beta=model.current_beta(), training=False,
                                    update_state=False)
            loss = terms.group_losses.get(group, terms.loss)
        grads = tape.gradient(loss, variables)
        return tf.concat([tf.reshape(g, [-1]) for g in grads if g is not None], 0)

    return one


def gradient_estimates(model, x, estimator=None, repeats: int = 16, group: str = "inference",
                       labels=None, view=None) -> np.ndarray:
    """``[repeats, P]`` independent estimates (`estimate_fn`)."""
    one = estimate_fn(model, x, estimator, group, labels, view)
    return np.stack([one().numpy() for _ in range(int(repeats))])


def summarize(estimates) -> Dict[str, float]:
    """Of estimates ``[R, P]``: ``variance``, the trace of their covariance (summed over the
    parameters); ``mean_variance``, per parameter, averaged; ``squared_norm_of_mean``,
    ||E g||^2, the signal the variance is measured against; ``snr``, their ratio."""
    g = np.asarray(estimates, np.float64)
    var = g.var(axis=0, ddof=1)
    signal = float(np.sum(g.mean(0) ** 2))
    return {"variance": float(var.sum()), "mean_variance": float(var.mean()),
            "squared_norm_of_mean": signal, "snr": signal / max(float(var.sum()), 1e-30)}


def gradient_variance(model, x, estimator=None, repeats: int = 16, group: str = "inference",
                      labels=None, view=None) -> Dict[str, float]:
    """`summarize` of ``repeats`` estimates on the batch ``x``."""
    return summarize(gradient_estimates(model, x, estimator, repeats, group, labels, view))


class WithSamples:
    """A model seen with ``num_samples`` = k (for comparing estimators that need k >= 2 on a
    model trained with one sample): every other attribute is the model's."""

    def __init__(self, model, k: int):
        self.model, self.num_samples = model, int(k)

    def __getattr__(self, name):
        return getattr(self.model, name)

    def given(self, labels, copies: int = 1):
        return WithSamples(self.model.given(labels, copies), self.num_samples)


def comparison_estimators(model, block, names, samples: int = 2):
    """``({name: (estimator, model view)}, {name: why skipped})`` for the estimator names
    ``names`` built from the config block ``block`` (``config.estimator``) on ``model``; an
    estimator that needs several samples sees the model with ``samples`` of them, and one that
    refuses the model is skipped with its reason."""
    out, skipped = {}, {}
    for name in names:
        b = block.copy_and_resolve_references()
        b.name = name
        view = model if model.num_samples > 1 or name not in ("rloo", "vimco") else \
            WithSamples(model, samples)
        try:
            est = estimators_lib.build(b)
            est.check(view)
            est.prepare(model)
        except ConfigError as err:
            skipped[name] = str(err)
            continue
        out[name] = (est, view)
    return out, skipped
