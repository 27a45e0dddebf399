"""How well a model's clusters (mixture components, a categorical code) match the classes,
with no label used to train it:

    cluster accuracy = max over one-to-one maps m of 1/N sum_n [m(c_n) = y_n]

(the Hungarian matching of clusters to classes, scipy's ``linear_sum_assignment``; the
measure of VaDE, Jiang et al. 2017, and GMVAE, Dilokthanakul et al. 2016), and the normalised
mutual information NMI = I(c; y) / sqrt(H(c) H(y)). With more clusters than classes, clusters
left unmatched count as errors; ``many_to_one`` instead maps each cluster to its majority class
(GMVAE's protocol for K > classes).
"""
import numpy as np

from tfvae.metrics import discrete_entropy, discrete_mutual_information


def _contingency(assignments, labels):
    _, c = np.unique(np.asarray(assignments), return_inverse=True)
    _, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(c) != len(y):
        raise ValueError(f"{len(c)} cluster assignments for {len(y)} labels")
    table = np.zeros((c.max() + 1, y.max() + 1), np.int64)
    np.add.at(table, (c, y), 1)
    return table


def cluster_accuracy(assignments, labels, many_to_one: bool = False) -> float:
    """Accuracy of the best one-to-one map of clusters to classes (``many_to_one``: each
    cluster to its majority class)."""
    from scipy.optimize import linear_sum_assignment
    table = _contingency(assignments, labels)
    if many_to_one:
        return float(table.max(1).sum() / table.sum())
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / table.sum())


def nmi(assignments, labels) -> float:
    """I(c; y) / sqrt(H(c) H(y)) in [0, 1] (0 where either is constant)."""
    c = np.asarray(assignments).reshape(-1, 1)
    y = np.asarray(labels).reshape(-1, 1)
    h = np.sqrt(discrete_entropy(c)[0] * discrete_entropy(y)[0])
    return float(discrete_mutual_information(c, y)[0, 0] / h) if h > 0 else 0.0
