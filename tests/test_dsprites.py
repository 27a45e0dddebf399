"""dSprites drawn from its factors (`tfvae.data.dsprites`): the grid's order, the geometry each
factor controls, and the source's streamed splits."""
import numpy as np
import pytest

from conftest import make_config
from tfvae.data import dsprites


def test_grid_order_is_the_published_one():
    idx = np.array([0, 1, 31, 32, 32 * 32, 32 * 32 * 40, 32 * 32 * 40 * 6, dsprites.NUM_IMAGES - 1])
    classes = dsprites.classes_of(idx)
    np.testing.assert_array_equal(classes[:7], [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1],
                                                [0, 0, 0, 0, 31], [0, 0, 0, 1, 0],
                                                [0, 0, 1, 0, 0], [0, 1, 0, 0, 0],
                                                [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(classes[-1], np.array(dsprites.NUM_VALUES) - 1)
    every = np.random.default_rng(0).integers(0, dsprites.NUM_IMAGES, 5000)
    np.testing.assert_array_equal(dsprites.index_of(dsprites.classes_of(every)), every)
    values = dsprites.values_of([[2, 5, 39, 31, 0]])[0]
    np.testing.assert_allclose(values, [3, 1.0, 2 * np.pi, 1.0, 0.0])


def _area(classes):
    return dsprites.render_images(np.asarray(classes)).sum(axis=(1, 2, 3))


def _centre(image):
    ys, xs = np.nonzero(image[..., 0])
    return xs.mean() + 0.5, ys.mean() + 0.5  # pixel i covers [i, i + 1)


def test_each_factor_does_what_it_says():
    # scale: area grows as scale^2 (0.5 -> 1: four times), for every shape
    for shape in range(3):
        small, big = _area([[shape, 0, 0, 16, 16], [shape, 5, 0, 16, 16]])
        assert big / small == pytest.approx(4.0, rel=0.12)
    # the square at scale 1 is 20 x 20 pixels; orientation 0 and 2 pi are the same picture
    assert _area([[0, 5, 0, 15, 15]])[0] == pytest.approx(400, abs=45)
    ends = dsprites.render_images(np.array([[1, 3, 0, 9, 20], [1, 3, 39, 9, 20]]))
    assert np.abs(ends[0] - ends[1]).sum() <= 4
    # orientation turns the shape, not its area nor its centre
    turned = dsprites.render_images(np.array([[1, 5, o, 16, 16] for o in (0, 7, 13)]))
    assert np.ptp(turned.sum(axis=(1, 2, 3))) / turned[0].sum() < 0.06
    assert not np.array_equal(turned[0], turned[1])
    # positions move the centre linearly over pixels 15 .. 49 (x right, y down)
    for x, y in [(0, 0), (31, 0), (0, 31), (20, 7)]:
        cx, cy = _centre(dsprites.render_images(np.array([[0, 2, 0, x, y]]))[0])
        assert cx == pytest.approx(15 + 34 * x / 31, abs=0.75)
        assert cy == pytest.approx(15 + 34 * y / 31, abs=0.75)
    # the three shapes differ, and stay inside the frame at any pose
    assert len({_area([[s, 5, 0, 16, 16]])[0] for s in range(3)}) == 3
    edge = dsprites.render_images(dsprites.classes_of(np.random.default_rng(1).integers(
        0, dsprites.NUM_IMAGES, 3000)))
    assert edge[:, [0, -1], :].sum() == 0 and edge[:, :, [0, -1]].sum() == 0


def test_the_source_streams_splits_drawn_from_the_grid():
    from tfvae import data
    config = make_config(data__source="dsprites", data__pixels="binary", data__test_size=1000,
                         data__validation_size=500, data__batch_size=64)
    splits = data.load(config.data, seed=0, with_labels=True)
    assert splits.image_shape == (64, 64, 1) and splits.num_classes == 3
    assert splits.class_names == dsprites.SHAPES
    assert splits.num_train == dsprites.NUM_IMAGES - 1500 and splits.num_test == 1000
    x, y = next(iter(splits.train))
    assert x.shape == (64, 64, 64, 1) and set(np.unique(x.numpy())) <= {0.0, 1.0}
    assert len(np.unique(y.numpy())) > 1 and 0.01 < float(np.mean(x)) < 0.2
    tx, ty = next(iter(splits.test))
    again = next(iter(data.load(config.data, seed=0, with_labels=True).test))
    np.testing.assert_array_equal(tx.numpy(), again[0].numpy())  # the same held-out images


def test_the_source_refuses_what_it_cannot_draw():
    from tfvae import data
    from tfvae.errors import ConfigError
    config = make_config(data__source="dsprites", data__image_size=32, data__test_size=100)
    with pytest.raises(ConfigError, match="leave them 0"):
        data.load(config.data)
