"""Disentanglement, completeness and informativeness (Eastwood and Williams 2018), as
disentanglement_lib computes them: one classifier per factor predicts v_k from the whole code;
its feature importances make the matrix ``R [L, K]`` (code dimensions x factors), and

    disentanglement = sum_j rho_j (1 - H_K(P_j.)),   P_jk = R_jk / sum_k R_jk,  rho_j ∝ sum_k R_jk
    completeness    = sum_k rho_k (1 - H_L(P_.k)),   P_jk = R_jk / sum_j R_jk,  rho_k ∝ sum_j R_jk
    informativeness = the classifiers' mean accuracy on held-out codes,

with entropies H_K, H_L in base K and L (so each score lies in [0, 1]).

The classifier (``predictor``): ``'gbt'``, scikit-learn's GradientBoostingClassifier with its
defaults, disentanglement_lib's; ``'random_forest'`` (faster on 10,000 points, importances of the
same kind); ``'lasso'`` (Eastwood and Williams' linear choice: |coefficients| of an
L1-regularised logistic regression on standardised codes).
"""
import numpy as np

from tfvae.metrics import check_codes


def _version():
    import sklearn
    return tuple(int(p) for p in sklearn.__version__.split(".")[:2])


def _classifier(predictor: str, seed: int):
    from sklearn import ensemble, linear_model
    if predictor == "gbt":
        return ensemble.GradientBoostingClassifier(random_state=seed)
    if predictor == "random_forest":
        return ensemble.RandomForestClassifier(n_estimators=50, max_depth=8, n_jobs=2,
                                               random_state=seed)
    if predictor == "lasso":  # scikit-learn 1.8 names the L1 penalty by l1_ratio alone
        l1 = {"l1_ratio": 1.0} if _version() >= (1, 8) else {"penalty": "l1"}
        return linear_model.LogisticRegression(C=0.1, solver="saga", max_iter=300,
                                               random_state=seed, **l1)
    raise ValueError(f"DCI predictor {predictor!r}: use 'gbt', 'random_forest' or 'lasso'")


def importance_matrix(codes_train, factors_train, codes_test, factors_test,
                      predictor: str = "gbt", seed: int = 0):
    """``(R [L, K], train accuracy, test accuracy)``: each factor's classifier on the codes."""
    codes_train, factors_train = check_codes(codes_train, factors_train)
    codes_test, factors_test = check_codes(codes_test, factors_test)
    if predictor == "lasso":  # |coefficients| compare only on standardised inputs
        mean, sd = codes_train.mean(0), codes_train.std(0) + 1e-8
        codes_train, codes_test = (codes_train - mean) / sd, (codes_test - mean) / sd
    r = np.zeros((codes_train.shape[1], factors_train.shape[1]))
    train_acc, test_acc = [], []
    for k in range(factors_train.shape[1]):
        model = _classifier(predictor, seed).fit(codes_train, factors_train[:, k])
        r[:, k] = (np.abs(model.coef_).sum(0) if predictor == "lasso"
                   else np.abs(model.feature_importances_))
        train_acc.append(np.mean(model.predict(codes_train) == factors_train[:, k]))
        test_acc.append(np.mean(model.predict(codes_test) == factors_test[:, k]))
    return r, float(np.mean(train_acc)), float(np.mean(test_acc))


def _weighted_score(r: np.ndarray) -> float:
    """sum_j rho_j (1 - H_K(P_j.)) over the rows of ``r`` (a row per code dimension)."""
    if r.shape[1] < 2:
        return 1.0  # one column: every row names it alone
    p = r / np.maximum(r.sum(1, keepdims=True), 1e-12)
    h = -np.sum(p * np.log(p + 1e-11), 1) / np.log(r.shape[1])
    weight = r.sum(1) / r.sum() if r.sum() > 0 else np.full(len(r), 1.0 / len(r))
    return float(np.sum(weight * (1.0 - h)))


def disentanglement(r: np.ndarray) -> float:
    """How far each code dimension captures at most one factor, from ``R [L, K]``."""
    return _weighted_score(r)


def completeness(r: np.ndarray) -> float:
    """How far each factor is captured by one code dimension, from ``R [L, K]``."""
    return _weighted_score(r.T)


def dci(codes_train, factors_train, codes_test, factors_test, predictor: str = "gbt",
        seed: int = 0) -> dict:
    """``{'dci_disentanglement', 'dci_completeness', 'dci_informativeness'}`` (the last the
    test accuracy; ``dci_informativeness_train`` beside it)."""
    r, train_acc, test_acc = importance_matrix(codes_train, factors_train, codes_test,
                                               factors_test, predictor, seed)
    return {"dci_disentanglement": disentanglement(r), "dci_completeness": completeness(r),
            "dci_informativeness": test_acc, "dci_informativeness_train": train_acc}
