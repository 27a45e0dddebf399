"""The separated attribute predictability score (Kumar, Sattigeri and Balakrishnan 2018), as
disentanglement_lib computes it: a score matrix ``S [L, K]`` of how well each single code
dimension predicts each factor, and

    SAP = 1/K sum_k (S_{j(1) k} - S_{j(2) k}),

the gap between the two best dimensions per factor. For discrete factors S_jk is the held-out
accuracy of a linear classifier (scikit-learn's LinearSVC, C = 0.01, balanced classes) on z_j
alone; for continuous ones the squared correlation of z_j and v_k.
"""
import numpy as np

from tfvae.metrics import check_codes


def score_matrix(codes_train, factors_train, codes_test=None, factors_test=None,
                 continuous: bool = False) -> np.ndarray:
    """``S [L, K]``: each code dimension's predictability of each factor."""
    from sklearn import svm
    codes_train, factors_train = check_codes(codes_train, factors_train)
    s = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    for j in range(codes_train.shape[1]):
        for k in range(factors_train.shape[1]):
            z, v = codes_train[:, j], factors_train[:, k]
            if continuous:
                c = np.cov(z, v, ddof=1)
                s[j, k] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1]) if c[0, 0] > 1e-12 else 0.0
            else:
                classifier = svm.LinearSVC(C=0.01, class_weight="balanced")
                classifier.fit(z[:, None], v)
                s[j, k] = np.mean(classifier.predict(
                    np.asarray(codes_test, np.float64)[:, j:j + 1]) == factors_test[:, k])
    return s


def sap(codes_train, factors_train, codes_test, factors_test, continuous: bool = False) -> float:
    """SAP of ``codes [N, L]`` against ``factors [N, K]`` (held-out accuracy on the test pair)."""
    s = score_matrix(codes_train, factors_train, codes_test,
                     np.asarray(factors_test), continuous)
    if s.shape[0] < 2:
        raise ValueError("SAP needs a code of at least 2 dimensions")
    top = np.sort(s, axis=0)[::-1]
    return float(np.mean(top[0] - top[1]))
