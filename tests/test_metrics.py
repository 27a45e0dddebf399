"""The structure metrics' defining properties (`tfvae.metrics`): a code equal to the factors
scores near 1, a random rotation of it scores low, permuting and rescaling the code's
coordinates changes nothing, and each agrees with an independent transcription of the
reference formula (disentanglement_lib's, scikit-learn's mutual information)."""
import numpy as np
import pytest
from sklearn import metrics as skm

from tfvae.metrics import GroundTruth, clustering, dci, factor_vae, mig, sap

NUM_VALUES = (3, 6, 8, 5)


def _factors(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, v, n) for v in NUM_VALUES], 1)


def _rotation(d, seed=1):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    return q


def _perfect(factors, seed=2):
    """The factors as a code (scaled to [0, 1], a little noise) plus two nuisance dimensions."""
    rng = np.random.default_rng(seed)
    code = factors / (np.asarray(NUM_VALUES) - 1.0) + 0.01 * rng.standard_normal(factors.shape)
    return np.concatenate([code, rng.standard_normal((len(factors), 2))], 1)


def _rotated(code):
    return code @ _rotation(code.shape[1])


def _permuted_rescaled(code, seed=3):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(code.shape[1])
    return code[:, perm] * rng.uniform(0.5, 4.0, code.shape[1]) + rng.normal(0, 3, code.shape[1])


def _reference_mig(codes, factors, bins=20):
    """disentanglement_lib's ``mig._compute_mig`` transcribed: histogram bins, sklearn MI."""
    disc = np.stack([np.digitize(c, np.histogram(c, bins)[1][:-1]) for c in codes.T])
    m = np.array([[skm.mutual_info_score(f, d) for f in factors.T] for d in disc])
    h = np.array([skm.mutual_info_score(f, f) for f in factors.T])
    s = np.sort(m, axis=0)[::-1]
    return np.mean((s[0] - s[1]) / h)


def test_mig_scores_the_factors_near_one_and_their_rotation_low():
    factors = _factors(10000)
    code = _perfect(factors)
    assert mig.mig(code, factors) > 0.9
    assert mig.mig(_rotated(code), factors) < 0.3
    assert mig.mig(_permuted_rescaled(code), factors) == pytest.approx(mig.mig(code, factors),
                                                                       abs=1e-12)


def test_mig_matches_disentanglement_libs_formula():
    factors = _factors(3000, seed=4)
    code = _rotated(_perfect(factors)) + 0.3 * np.random.default_rng(5).standard_normal((3000, 6))
    assert mig.mig(code, factors) == pytest.approx(_reference_mig(code, factors), abs=1e-10)


def test_sampled_mig_of_chen_et_al():
    factors = _factors(3000, seed=6)
    loc = _perfect(factors)
    scale = np.full(loc.shape, 0.02)
    good = mig.mig_sampled(loc, scale, factors, NUM_VALUES, num_samples=1000)
    assert good > 0.85
    assert mig.mig_sampled(_rotated(loc), scale, factors, NUM_VALUES, num_samples=1000) < 0.3
    # Leaving a factor out averages over the others only (their code leaves dSprites' shape out).
    assert mig.mig_sampled(loc, scale, factors, NUM_VALUES, exclude=(0,),
                           num_samples=1000) > 0.85


def _reference_dci_scores(r):
    """disentanglement_lib's ``dci.disentanglement`` / ``completeness`` transcribed."""
    from scipy import stats
    per_code = 1. - stats.entropy(r.T + 1e-11, base=r.shape[1])
    d = np.sum(per_code * r.sum(1) / r.sum())
    per_factor = 1. - stats.entropy(r + 1e-11, base=r.shape[0])
    c = np.sum(per_factor * r.sum(0) / r.sum())
    return d, c


def test_dci_scores_from_an_importance_matrix_match_the_reference():
    rng = np.random.default_rng(7)
    for shape in [(6, 4), (10, 3), (3, 5)]:
        r = rng.exponential(size=shape)
        d, c = _reference_dci_scores(r)
        assert dci.disentanglement(r) == pytest.approx(d, abs=1e-9)
        assert dci.completeness(r) == pytest.approx(c, abs=1e-9)
    eye = np.eye(4)
    assert dci.disentanglement(eye) == pytest.approx(1.0) and dci.completeness(eye) == \
        pytest.approx(1.0)
    assert dci.disentanglement(np.ones((4, 4))) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("predictor", [pytest.param("gbt", marks=pytest.mark.slow), "lasso"])
def test_dci_of_the_factors_and_of_their_rotation(predictor):
    factors = _factors(1000, seed=8)
    test_factors = _factors(500, seed=9)
    code, test_code = _perfect(factors), _perfect(test_factors, seed=10)
    good = dci.dci(code, factors, test_code, test_factors, predictor)
    assert good["dci_disentanglement"] > 0.8 and good["dci_completeness"] > 0.7
    assert good["dci_informativeness"] > 0.95
    bad = dci.dci(_rotated(code), factors, _rotated(test_code), test_factors, predictor)
    assert bad["dci_disentanglement"] < good["dci_disentanglement"] - 0.3
    perm = np.random.default_rng(11).permutation(6)
    scaled = np.linspace(0.5, 3.0, 6)
    moved = dci.dci(code[:, perm] * scaled, factors, test_code[:, perm] * scaled, test_factors,
                    predictor)
    for key in ("dci_disentanglement", "dci_completeness", "dci_informativeness"):
        assert moved[key] == pytest.approx(good[key], abs=0.03), key


def test_sap_of_the_factors_and_of_their_rotation():
    factors, test_factors = _factors(2000, seed=12), _factors(1000, seed=13)
    code, test_code = _perfect(factors), _perfect(test_factors, seed=14)
    good = sap.sap(code, factors, test_code, test_factors)
    assert good > 0.2
    assert sap.sap(_rotated(code), factors, _rotated(test_code), test_factors) < good / 2
    cont = sap.sap(code, factors, test_code, test_factors, continuous=True)
    assert cont > 0.8  # squared correlation of the one dimension that holds each factor
    moved = _permuted_rescaled(code)
    assert sap.sap(moved, factors, moved, factors, continuous=True) == pytest.approx(
        sap.sap(code, factors, code, factors, continuous=True), abs=1e-9)


def _truth():
    """A ground truth whose 'images' are the factors themselves ([N, 1, 1, K])."""
    return GroundTruth(("a", "b", "c", "d"), NUM_VALUES,
                       lambda f: _perfect(f)[:, None, None, :4].astype(np.float32))


def test_factor_vae_score_is_one_for_the_factors_and_lower_for_their_rotation():
    truth = _truth()
    identity = lambda images: images.reshape(len(images), -1)  # noqa: E731
    # Equal loadings of every factor on every dimension (a Hadamard rotation): fixing one
    # factor lowers every dimension's variance alike, so no dimension singles it out.
    rotation = np.array([[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]) / 2.0
    good = factor_vae.factor_vae_score(identity, truth, num_train=300, num_eval=200)
    assert good["factor_vae_score"] == 1.0 and good["num_active_dims"] == 4
    bad = factor_vae.factor_vae_score(lambda x: identity(x) @ rotation, truth, num_train=300,
                                      num_eval=200)
    assert bad["factor_vae_score"] < 0.6
    collapsed = factor_vae.factor_vae_score(lambda x: 0 * identity(x), truth, num_train=10,
                                            num_eval=10)
    assert collapsed["factor_vae_score"] == 0.0 and collapsed["num_active_dims"] == 0


def test_cluster_accuracy_and_nmi():
    rng = np.random.default_rng(15)
    labels = rng.integers(0, 10, 5000)
    renamed = rng.permutation(10)[labels]
    assert clustering.cluster_accuracy(renamed, labels) == 1.0
    assert clustering.nmi(renamed, labels) == pytest.approx(1.0)
    assert clustering.nmi(renamed, labels) == pytest.approx(
        skm.normalized_mutual_info_score(labels, renamed, average_method="geometric"))
    random = rng.integers(0, 10, 5000)
    assert clustering.cluster_accuracy(random, labels) < 0.15
    assert clustering.nmi(random, labels) < 0.01
    # By hand: clusters (0,0,1,1,2) of classes (5,5,5,7,7): best one-to-one map 0->5, 1->7 (or
    # 2->7): 3 of 5; the majority map 0->5, 1->5 or 7, 2->7: 4 of 5.
    c, y = [0, 0, 1, 1, 2], [5, 5, 5, 7, 7]
    assert clustering.cluster_accuracy(c, y) == pytest.approx(0.6)
    assert clustering.cluster_accuracy(c, y, many_to_one=True) == pytest.approx(0.8)
    rng_nmi = rng.integers(0, 4, 3000)
    assert clustering.nmi(rng_nmi, labels[:3000]) == pytest.approx(
        skm.normalized_mutual_info_score(labels[:3000], rng_nmi, average_method="geometric"),
        abs=1e-9)


def test_metrics_refuse_mismatched_or_diverged_codes():
    factors = _factors(100)
    with pytest.raises(ValueError, match="one row per image"):
        mig.mig(np.zeros((99, 3)), factors)
    with pytest.raises(ValueError, match="diverged"):
        mig.mig(np.full((100, 3), np.nan), factors)
