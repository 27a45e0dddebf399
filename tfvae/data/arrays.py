"""The ``arrays`` source: a ``.npz`` (``images``, optional ``labels``, ``test_images``,
``test_labels``) or ``.npy`` file of images (``data.path``); from Python, `from_arrays` takes
NumPy arrays or a `tf.data.Dataset`."""
import os
from typing import Dict

import numpy as np

from tfvae.data.checks import Arrays, checked_arrays
from tfvae.data.sources import SOURCES, Source
from tfvae.errors import DataError


# --------------------------------------------------------------------------- arrays
def from_arrays(images, labels=None, test_images=None, test_labels=None,
                where: str = "images") -> Dict[str, Arrays]:
    """Your images as a source, for ``data.load(config.data, arrays=...)``: NumPy arrays (or
    `tf.data.Dataset`s of images or ``(image, label)`` pairs) of shape ``[N, H, W]`` or
    ``[N, H, W, C]`` (C = 1 or 3), uint8 in 0..255 or floats in [0, 1] (kept as 8-bit levels);
    labels integers ``[N]``. ``where`` names them in errors."""
    out = {"train": checked_arrays(images, labels, where)}
    if test_images is not None:
        out["test"] = checked_arrays(test_images, test_labels, f"{where} (test_images)")
        if out["test"][0].shape[1:] != out["train"][0].shape[1:]:
            raise DataError(f"{where}: test_images of shape {out['test'][0].shape[1:]} but "
                            f"images of {out['train'][0].shape[1:]}; both must be the same "
                            "size and channels")
    return out


def load_array_file(path: str) -> Dict[str, Arrays]:
    """A ``.npy`` of images, or a ``.npz`` with ``images`` and optionally ``labels``,
    ``test_images``, ``test_labels`` (see `from_arrays`)."""
    if not os.path.exists(path):
        raise DataError(f"data.path={path!r}: file not found; give a .npz or .npy file of images")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path}: not a NumPy .npy/.npz file "
                        f"({str(err).splitlines()[0]})") from None
    if isinstance(loaded, np.ndarray):
        return from_arrays(loaded, where=path)
    with loaded:
        names = list(loaded.files)
        if "images" not in names:
            raise DataError(f"{path} has no array named 'images' (it holds: "
                            f"{', '.join(names) or 'nothing'}); save your images as "
                            "np.savez(path, images=..., labels=...)")
        get = lambda key: loaded[key] if key in names else None  # noqa: E731
        return from_arrays(get("images"), get("labels"), get("test_images"), get("test_labels"),
                           where=path)


@SOURCES.register("arrays")
class ArraysSource(Source):
    """A ``.npz`` or ``.npy`` file of images (``data.path``)."""

    needs = ("path", "a .npz or .npy file of images")

    def arrays(self, c) -> Dict[str, Arrays]:
        return load_array_file(os.path.expanduser(c.path))
