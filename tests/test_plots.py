"""Figures: every plot function writes a readable PNG of sensible size from plain arrays."""
import matplotlib.image
import numpy as np
import pytest

from tfvae.results import plots

RNG = np.random.default_rng(0)


def _png(path):
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert image[..., :3].std() > 0.01  # not a blank canvas
    return image


@pytest.mark.parametrize("channels", [1, 3])
def test_grids_reconstructions_traversals(tmp_path, channels):
    images = RNG.random((12, 8, 8, channels)).astype(np.float32)
    _png(plots.image_grid(images, str(tmp_path / "grid.png"), ncols=4, title="t"))
    _png(plots.reconstructions(images[:5], images[5:10], str(tmp_path / "rec.png")))
    trav = RNG.random((3, 5, 8, 8, channels))
    _png(plots.traversals(trav, np.linspace(-2, 2, 5), [0, 4, 7], str(tmp_path / "trav.png")))


def test_tile_places_each_image():
    images = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.1, 0.2, 0.3)])
    canvas = plots._tile(images, ncols=2, pad=1)
    assert canvas.shape == (7, 7, 1)
    assert canvas[1, 1, 0] == pytest.approx(0.1) and canvas[1, 4, 0] == pytest.approx(0.2)
    assert canvas[4, 1, 0] == pytest.approx(0.3) and canvas[4, 4, 0] == 1.0  # empty slot


def test_latent_density_panels_fit_their_samples(tmp_path):
    z_far = RNG.normal(20.0, 1.0, (500, 2))
    lo, hi = plots._window(z_far)
    assert lo[0] < 17 and hi[0] > 23 and lo[0] <= -3  # covers the samples and the origin
    panels = [{"name": n, "z": RNG.normal(size=(300, 2)), "labels": RNG.integers(0, 10, 300),
               "log_density": lambda p: -0.5 * (p ** 2).sum(-1)} for n in ("a", "b")]
    _png(plots.latent_density(panels, str(tmp_path / "d.png"), title="t"))


def test_histograms_scatter_curves(tmp_path):
    panels = [{"name": n, "prior_samples": RNG.normal(size=(1000, 6)),
               "posterior_samples": RNG.normal(size=(800, 6))} for n in ("p1", "p2")]
    _png(plots.prior_histograms(panels, str(tmp_path / "h.png")))
    _png(plots.latent_scatter(RNG.normal(size=(200, 5)), str(tmp_path / "s.png"),
                              labels=RNG.integers(0, 10, 200)))
    _png(plots.training_curves({"elbo": [-200, -150, -120], "val_elbo": [-190, -150, -125]},
                               str(tmp_path / "c.png")))
    # no epoch (a run of imported weights): no figure, rather than empty axes
    assert plots.training_curves({"elbo": [], "loss": [1.0]}, str(tmp_path / "e.png")) is None
    assert not (tmp_path / "e.png").exists()
