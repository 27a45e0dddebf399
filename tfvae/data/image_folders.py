"""A folder of the user's own images (``data.source='folder'``, ``data.path=DIR``): its layout,
labels and checks, before anything trains.

Layouts (as ``keras.utils.image_dataset_from_directory``, plus optional split folders):

    DIR/*.png                        images without labels
    DIR/CLASS/*.png                  one subfolder per class: labels 0..K-1 in sorted name order
    DIR/train/..., DIR/validation/..., DIR/test/...   given splits, each in one of the layouts
                                     above (missing ones are held out from train, seeded)

Images: PNG, JPEG or BMP, grey or colour. `scan` reads every file once and fails with one line
that names the file and the fix (``data.bad_images='skip'`` skips unreadable files instead and
says how many): an empty folder, a file that is not an image, a corrupt or truncated image,
sizes that differ without ``data.image_size``, grey and colour images mixed without
``data.channels``, class folders that differ between splits.
"""
import concurrent.futures
import dataclasses
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from tfvae.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SPLIT_FOLDERS = ("train", "validation", "test")
BAD_IMAGES = ("fail", "skip")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclasses.dataclass
class Folder:
    """A scanned folder: per split, the image files and their labels (-1: no label)."""

    files: Dict[str, List[str]]
    labels: Dict[str, np.ndarray]
    class_names: Optional[Tuple[str, ...]]
    size: Tuple[int, int]            # (height, width) of every image (before data.image_size)
    channels: int                    # 1 or 3 (after data.channels)
    skipped: List[str]               # unreadable files skipped (data.bad_images='skip')

    def decoded_bytes(self, image_size: int = 0) -> int:
        """Bytes of every image decoded as uint8 at its final size."""
        h, w = (image_size, image_size) if image_size else self.size
        return sum(len(f) for f in self.files.values()) * h * w * self.channels


def _entries(directory):
    return sorted(e for e in os.listdir(directory) if not e.startswith("."))


def _images_in(directory: str, where: str) -> List[str]:
    """Every file below ``directory`` (recursively), each required to be an image."""
    out = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            if not name.lower().endswith(EXTENSIONS):
                raise DataError(f"{path}: not an image file (tfvae reads "
                                f"{', '.join(EXTENSIONS)}); move it out of {where}")
            out.append(path)
    return out


def _split_layout(directory: str):
    """``(files, class index per file, class names or None)`` of one split folder."""
    entries = _entries(directory)
    subdirs = [e for e in entries if os.path.isdir(os.path.join(directory, e))]
    files = [e for e in entries if not os.path.isdir(os.path.join(directory, e))]
    if subdirs and files:
        raise DataError(f"{directory} holds both image files ({files[0]}, ...) and subfolders "
                        f"({subdirs[0]}, ...); put every image in a class subfolder, or none")
    if not subdirs:
        paths = _images_in(directory, directory)
        return paths, np.full(len(paths), -1, np.int64), None
    paths, labels = [], []
    for k, name in enumerate(subdirs):
        found = _images_in(os.path.join(directory, name), directory)
        paths += found
        labels += [k] * len(found)
    return paths, np.asarray(labels, np.int64), tuple(subdirs)


def _read_header(path: str):
    """``(height, width, channels)`` of a fully decoded image (so that a truncated or corrupt
    file is found now, not in the middle of training), or the error's text."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            image.load()
            channels = 1 if image.mode in _GREY_MODES else 3
            return image.height, image.width, channels
    except Exception as err:  # noqa: BLE001 - PIL raises many kinds for a bad file
        return f"{type(err).__name__}: {err}"


def scan(path: str, channels: int = 0, image_size: int = 0, bad_images: str = "fail") -> Folder:
    """Reads the layout of the folder ``path`` and checks every image (see module doc).
    ``channels``: 0 keeps the files' (which must then agree), 1 or 3 converts; ``image_size``:
    a resize, after which sizes may differ; ``bad_images``: 'fail' or 'skip'."""
    path = os.path.expanduser(path)
    if not os.path.isdir(path):
        raise DataError(f"data.path={path!r} is not a folder; give the folder of your images "
                        "(data.source='folder')")
    entries = _entries(path)
    given = [e for e in entries if e in SPLIT_FOLDERS and os.path.isdir(os.path.join(path, e))]
    files, labels, names = {}, {}, {}
    if given:
        if "train" not in given:
            raise DataError(f"{path} has {', '.join(given)}/ but no train/; add the training "
                            "images in train/")
        extra = [e for e in entries if e not in given]
        if extra:
            raise DataError(f"{path} holds split folders ({', '.join(given)}) and also "
                            f"{extra[0]}; move it into one of them or out of the folder")
        for split in given:
            files[split], labels[split], names[split] = _split_layout(os.path.join(path, split))
    else:
        files["train"], labels["train"], names["train"] = _split_layout(path)
    class_names = names["train"]
    for split, found in names.items():
        if found != class_names:
            raise DataError(f"{os.path.join(path, split)} has classes {list(found or [])} but "
                            f"{os.path.join(path, 'train')} has {list(class_names or [])}; every "
                            "split needs the same class folders")
    if not any(files.values()):
        raise DataError(f"{path} holds no images ({', '.join(EXTENSIONS)}); put your images "
                        "there, optionally one subfolder per class")

    every = [(split, i, f) for split, fs in files.items() for i, f in enumerate(fs)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        headers = list(pool.map(_read_header, [f for _, _, f in every]))
    bad = [(f, h) for (_, _, f), h in zip(every, headers) if isinstance(h, str)]
    if bad and bad_images != "skip":
        raise DataError(f"{bad[0][0]}: not a readable image ({bad[0][1]}); the file is corrupt or "
                        "truncated: replace or remove it, or set data.bad_images='skip'"
                        + (f" ({len(bad)} such files)" if len(bad) > 1 else ""))
    keep = {split: np.ones(len(fs), bool) for split, fs in files.items()}
    for (split, i, _), h in zip(every, headers):
        if isinstance(h, str):
            keep[split][i] = False
    good = [(f, h) for (_, _, f), h in zip(every, headers) if not isinstance(h, str)]
    sizes = {}
    kinds = {}
    for f, (h, w, c) in good:
        sizes.setdefault((h, w), f)
        kinds.setdefault(c, f)
    if len(sizes) > 1 and not image_size:
        (a, fa), (b, fb) = list(sizes.items())[:2]
        raise DataError(f"images differ in size: {fa} is {a[0]}x{a[1]}, {fb} is {b[0]}x{b[1]}; "
                        "set data.image_size=N to resize every image to N x N")
    if len(kinds) > 1 and not channels:
        raise DataError(f"grey and colour images are mixed: {kinds[1]} is grey, {kinds[3]} is "
                        "colour; set data.channels=3 (grey images become colour) or "
                        "data.channels=1 (colour images become grey)")
    return Folder(
        files={s: [f for f, k in zip(fs, keep[s]) if k] for s, fs in files.items()},
        labels={s: labels[s][keep[s]] for s in files},
        class_names=class_names,
        size=next(iter(sizes)),
        channels=channels or next(iter(kinds)),
        skipped=[f for f, _ in bad])


def decode(path, channels: int, image_size: int):
    """One image file as uint8 ``[H, W, C]`` in TensorFlow (usable inside `tf.data`): PNG, JPEG
    or BMP, converted to ``channels``, resized to ``image_size`` (bilinear, antialiased) if set."""
    import tensorflow as tf
    image = tf.io.decode_image(tf.io.read_file(path), channels=channels, dtype=tf.uint8,
                               expand_animations=False)
    if image_size:
        image = tf.image.resize(tf.cast(image, tf.float32), (image_size, image_size),
                                method="bilinear", antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)
    return image


def read_all(files: List[str], channels: int, image_size: int) -> np.ndarray:
    """Every file decoded into one uint8 array ``[N, H, W, C]`` (for folders that fit in memory)."""
    import tensorflow as tf
    if not files:
        return np.zeros((0, image_size, image_size, channels), np.uint8)
    ds = tf.data.Dataset.from_tensor_slices(files).map(
        lambda f: decode(f, channels, image_size), num_parallel_calls=4, deterministic=True)
    return np.concatenate([b.numpy() for b in ds.batch(1024)])
