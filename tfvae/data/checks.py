"""Checks of the images and labels a source gives: pixels (uint8 levels; bools, integers 0..255
or floats in [0, 1] converted; NaN, infinite or out-of-range values refused) and labels
(integers 0..K-1, -1 unlabelled). Each refusal is one `DataError` naming where, the problem,
how many values and the first image."""
from typing import Tuple

import numpy as np
import tensorflow as tf

from tfvae.errors import DataError

Arrays = Tuple[np.ndarray, np.ndarray]  # images uint8 [N, H, W, C], labels int64 [N]


def as_numpy(data, labels):
    """``(images, labels)`` as NumPy arrays; a `tf.data.Dataset` (of images or ``(image,
    label)`` pairs, batched or not) is read whole."""
    if not isinstance(data, tf.data.Dataset):
        return np.asarray(data), labels
    spec = data.element_spec
    if (spec[0] if isinstance(spec, tuple) else spec).shape.rank == 4:
        data = data.unbatch()
    images, found = [], []
    for element in data.as_numpy_iterator():
        image, label = element if isinstance(element, tuple) else (element, None)
        images.append(image)
        if label is not None:
            found.append(label)
    return np.stack(images) if images else np.zeros((0, 1, 1, 1), np.uint8), (
        np.stack(found) if found else labels)


def where_bad(bad: np.ndarray) -> str:
    """``'N values in M images, the first in image i'`` for a boolean mask ``[N, ...]``."""
    per_image = bad.reshape(len(bad), -1).any(axis=1)
    return (f"{int(bad.sum())} values in {int(per_image.sum())} images, the first in image "
            f"{int(np.argmax(per_image))}")


def checked_pixels(images, where) -> np.ndarray:
    """uint8 levels of ``images`` (uint8, bool, integers 0..255 or floats in [0, 1]); raises
    `DataError` naming ``where``, the problem, how many values and the first image."""
    if images.dtype == np.uint8:
        return images
    if images.dtype == bool:
        return images.astype(np.uint8) * 255
    if np.issubdtype(images.dtype, np.floating):
        low, high = float(np.min(images)), float(np.max(images))  # NaN if any is NaN
        if 0.0 <= low and high <= 1.0:  # the usual case: two passes, no masks
            return np.round(images * 255.0).astype(np.uint8)
        finite = np.isfinite(images)
        if not finite.all():
            raise DataError(f"{where}: NaN or infinite pixels, {where_bad(~finite)}; replace "
                            "or drop those images (floats must lie in [0, 1])")
        outside = (images < 0.0) | (images > 1.0)
        if outside.any():
            raise DataError(
                f"{where}: float pixels outside [0, 1] (from {low:g} to {high:g}), "
                f"{where_bad(outside)}; scale them to [0, 1] (or give uint8 levels 0..255)")
        return np.round(images * 255.0).astype(np.uint8)
    if np.issubdtype(images.dtype, np.integer):
        outside = (images < 0) | (images > 255)
        if outside.any():
            raise DataError(
                f"{where}: integer pixels outside 0..255 (from {int(images.min())} to "
                f"{int(images.max())}), {where_bad(outside)}; give 8-bit levels 0..255 (or "
                "floats in [0, 1])")
        return images.astype(np.uint8)
    raise DataError(f"{where}: dtype {images.dtype}; give uint8 levels or floats in [0, 1]")


def checked_labels(labels, n: int, where) -> np.ndarray:
    """int64 labels ``[n]``: integers (whole-valued floats accepted), 0..K-1 or -1 for an
    unlabelled image."""
    if labels is None:
        return np.full(n, -1, np.int64)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise DataError(f"{where}: {n} images but labels of shape {labels.shape}; give one "
                        "integer label per image")
    if np.issubdtype(labels.dtype, np.floating):
        whole = np.isfinite(labels) & (labels == np.round(labels))
        if not whole.all():
            bad = np.flatnonzero(~whole)
            raise DataError(f"{where}: labels that are not integers ({len(bad)} of {n}, the "
                            f"first at index {bad[0]}: {float(labels[bad[0]]):g}); give class "
                            "numbers 0..K-1 (-1: unlabelled)")
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{where}: labels of dtype {labels.dtype}; give integer class numbers "
                        "0..K-1 (-1: unlabelled)")
    bad = np.flatnonzero(labels < -1)
    if len(bad):
        raise DataError(f"{where}: negative labels other than -1 ({len(bad)} of {n}, the first "
                        f"at index {bad[0]}: {int(labels[bad[0]])}); labels are 0..K-1, or -1 "
                        "for an unlabelled image")
    return labels.astype(np.int64)


def checked_arrays(images, labels, where) -> Arrays:
    """``(images, labels)`` checked: uint8 ``[N, H, W, C]`` (C = 1 or 3), int64 ``[N]``."""
    images, labels = as_numpy(images, labels)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{where}: shape {images.shape}; expected [N, H, W] or [N, H, W, C] "
                        "with C = 1 (grey) or 3 (colour)")
    if not len(images):
        raise DataError(f"{where}: no images")
    return checked_pixels(images, where), checked_labels(labels, len(images), where)
