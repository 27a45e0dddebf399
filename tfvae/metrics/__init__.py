"""Does a representation line up with the true factors of the data? Each metric is a pure
function of codes and factors (NumPy arrays), one module each, as disentanglement_lib's
``evaluation/metrics/`` reads; none imports a model, TensorFlow or a data source.

Shapes: ``codes [N, L]`` (one row per image: encoder means, or posterior samples where a metric
says so); ``factors [N, K]`` of integer factor classes 0..V_k-1 (the index of each factor's
value, as ``latents_classes`` in the published dSprites file).

| module | metric | what it needs |
| --- | --- | --- |
| `mig` | ``mig`` (disentanglement_lib: means, 20 bins), ``mig_sampled`` (Chen et al.: q(z\\|x)) | codes and factors |
| `dci` | ``dci``: disentanglement, completeness, informativeness | codes and factors (train / test) |
| `sap` | ``sap`` | codes and factors (train / test) |
| `factor_vae` | ``factor_vae_score`` | a way to render images of chosen factors (`GroundTruth`) |
| `clustering` | ``cluster_accuracy`` (Hungarian matching), ``nmi`` | cluster assignments and classes |

`GroundTruth` is what a metric that draws its own images needs of a data set with known factors:
their names, how many values each has, a sampler of factors and a renderer.
"""
from typing import Callable, NamedTuple, Tuple

import numpy as np


class GroundTruth(NamedTuple):
    """A data set whose images are a known function of discrete factors: ``names`` and
    ``num_values`` per factor, ``render(factors [N, K] int) -> images [N, H, W, C] float32``."""

    names: Tuple[str, ...]
    num_values: Tuple[int, ...]
    render: Callable[[np.ndarray], np.ndarray]

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``[n, K]`` factor classes drawn uniformly and independently (the grid's law)."""
        return np.stack([rng.integers(0, v, n) for v in self.num_values], 1)


def check_codes(codes, factors) -> Tuple[np.ndarray, np.ndarray]:
    """``(codes float64 [N, L], factors int64 [N, K])``, or ValueError naming the mismatch."""
    codes, factors = np.asarray(codes, np.float64), np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise ValueError(f"codes [N, L] and factors [N, K] must have one row per image; got "
                         f"{codes.shape} and {factors.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes hold NaN or infinite values; the model diverged")
    return codes, factors.astype(np.int64)


def discretize(codes: np.ndarray, num_bins: int = 20) -> np.ndarray:
    """Each code dimension's values in ``num_bins`` equal-width bins over its range, ``[N, L]``
    int (disentanglement_lib's histogram discretiser)."""
    out = np.zeros(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], num_bins)
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def discrete_mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``I(a_i; b_k)`` in nats for every column pair of two integer arrays ``[N, I]``,
    ``[N, K]``: the plug-in estimate from their joint histogram, ``[I, K]``."""
    out = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        for k in range(b.shape[1]):
            _, ai = np.unique(a[:, i], return_inverse=True)
            _, bk = np.unique(b[:, k], return_inverse=True)
            joint = np.zeros((ai.max() + 1, bk.max() + 1))
            np.add.at(joint, (ai, bk), 1.0)
            joint /= joint.sum()
            outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
            nz = joint > 0
            out[i, k] = np.sum(joint[nz] * np.log(joint[nz] / outer[nz]))
    return out


def discrete_entropy(b: np.ndarray) -> np.ndarray:
    """``H(b_k)`` in nats of each column of an integer array ``[N, K]``."""
    out = np.zeros(b.shape[1])
    for k in range(b.shape[1]):
        p = np.unique(b[:, k], return_counts=True)[1] / len(b)
        out[k] = -np.sum(p * np.log(p))
    return out
