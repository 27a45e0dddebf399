"""The ``idx`` source: a folder of official IDX files (``data.idx_dir``), as MNIST and
FashionMNIST ship: ``train-images-idx3-ubyte[.gz]`` (required), ``t10k-...`` (the test split,
optional) and their ``-labels-idx1-ubyte`` files."""
import glob
import gzip
import os
import zlib
from typing import Dict, Optional

import numpy as np

from tfvae.data.checks import Arrays
from tfvae.data.sources import SOURCES, Source
from tfvae.errors import DataError

# --------------------------------------------------------------------------- IDX files
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
    """Reads an IDX file (optionally gzipped) as distributed by the MNIST/FashionMNIST authors.

    Raises `DataError` naming the file and what is wrong: unreadable gzip stream, bad magic
    number, or a payload whose length disagrees with the header.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (EOFError, OSError, zlib.error) as e:
        raise DataError(
            f"{path}: cannot be decompressed ({e}); the file is corrupt or truncated, "
            "download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; expected "
            "00 00 <type> <ndim>, e.g. 00000803 for images, 00000801 for labels)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    payload = len(raw) - header
    if payload != expected:
        raise DataError(
            f"{path}: header says shape {dims} ({expected} bytes of data) but the file holds "
            f"{payload} bytes; the file is truncated or corrupt, download it again")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find_idx(directory: str, prefix: str, kind: str, ndim: int) -> Optional[str]:
    """Finds e.g. ``train-images-idx3-ubyte[.gz]`` (or the ``train-images.idx3-ubyte`` variant)."""
    for sep in ("-", "."):
        for ext in ("", ".gz"):
            path = os.path.join(directory, f"{prefix}-{kind}{sep}idx{ndim}-ubyte{ext}")
            if os.path.exists(path):
                return path
    return None


def load_idx_dir(directory: str) -> Dict[str, Arrays]:
    """Reads ``train`` (required) and ``t10k`` (test, optional) IDX files from a folder."""
    if not os.path.isdir(directory):
        raise DataError(
            f"IDX folder {directory!r} does not exist; set data.idx_dir to a folder holding "
            "train-images-idx3-ubyte.gz (and t10k-images-idx3-ubyte.gz for a test split)")
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images_path = _find_idx(directory, prefix, "images", 3)
        if images_path is None:
            if split == "train":
                present = sorted(os.path.basename(p)
                                 for p in glob.glob(os.path.join(directory, "*")))
                raise DataError(
                    f"no {prefix}-images-idx3-ubyte[.gz] in {directory!r} (it holds: "
                    f"{', '.join(present) or 'nothing'}); point data.idx_dir at the folder with "
                    "the official IDX files")
            continue
        images = read_idx(images_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DataError(f"{images_path}: expected uint8 images [N, H, W], got "
                            f"{images.dtype} {images.shape}")
        labels_path = _find_idx(directory, prefix, "labels", 1)
        if labels_path is None:
            labels = np.full(len(images), -1, np.int64)
        else:
            labels = read_idx(labels_path).astype(np.int64)
            if labels.shape != (len(images),):
                raise DataError(
                    f"{images_path} holds {len(images)} images but {labels_path} holds "
                    f"{labels.shape[0] if labels.ndim else 0} labels; the two files must come "
                    "from the same release (re-download the pair)")
        out[split] = (images[..., None], labels)
    return out


@SOURCES.register("idx")
class IdxSource(Source):
    """A folder of IDX files (``data.idx_dir``)."""

    needs = ("idx_dir", "the folder of *-idx3-ubyte[.gz] files")

    def arrays(self, c) -> Dict[str, Arrays]:
        return load_idx_dir(os.path.expanduser(c.idx_dir))
