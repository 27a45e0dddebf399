"""The ``folder`` source: a folder of your own PNG/JPEG/BMP images (``data.path``), grey or
colour, optionally one subfolder per class and ``train/``, ``validation/``, ``test/``
(`tfvae.data.image_folders` reads the layout). Decoded images up to ``data.in_memory_mb`` are
held in memory; a larger folder streams from disk, its files reshuffled every epoch and
decoded in parallel."""
import numpy as np
import tensorflow as tf

from tfvae.data import image_folders
from tfvae.data import splits as splits_lib
from tfvae.data.sources import SOURCES, Found, Source


def _streamed_folder(c, folder, seed: int, with_labels: bool, say, shard=None):
    """A folder read as it goes: the training files reshuffled every epoch, then decoded in
    parallel (see `splits.streamed`)."""
    files = {k: np.asarray(v) for k, v in folder.files.items()}
    train_idx, val_idx, test_idx = splits_lib.holdout(len(files["train"]), c, seed, "test" in files,
                                            "validation" in files)
    shape = ((c.image_size, c.image_size) if c.image_size else folder.size) + (folder.channels,)
    megabytes = folder.decoded_bytes(c.image_size) / 2 ** 20
    say(f"note: the folder's {sum(len(f) for f in files.values())} images ({megabytes:.0f} MB "
        f"decoded) exceed data.in_memory_mb={c.in_memory_mb}: streaming them from disk")

    def images(split, held, shuffle=False):
        paths, labels = ((files[split], folder.labels[split]) if split in files and held is None
                         else (files["train"][held], folder.labels["train"][held]))
        if shuffle:  # the training labels data.labels keeps
            labels = splits_lib.keep_labels(labels, c.labels, len(folder.class_names or ()), seed)
        ds = tf.data.Dataset.from_tensor_slices((paths, labels))
        if shuffle and shard:  # this worker's files only
            ds = ds.shard(*shard)
            paths = paths[shard[1]::shard[0]]
        if shuffle:  # the file order, reshuffled every epoch, before anything is decoded
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        decode = lambda f, y: (tf.ensure_shape(  # noqa: E731
            image_folders.decode(f, folder.channels, c.image_size), shape), y)
        return ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True), len(paths)
    return splits_lib.streamed(c, images("train", train_idx, shuffle=True),
                     images("validation", None if "validation" in files else val_idx),
                     images("test", None if "test" in files else test_idx),
                     shape, seed, with_labels, folder.class_names, shard)


@SOURCES.register("folder")
class FolderSource(Source):
    """A folder of images (``data.path``)."""

    needs = ("path", "the folder of your images")

    def scan(self, c):
        return image_folders.scan(c.path, c.channels, c.image_size, c.bad_images)

    def arrays(self, c, folder=None):
        folder = folder or self.scan(c)
        return {split: (image_folders.read_all(files, folder.channels, c.image_size),
                        folder.labels[split]) for split, files in folder.files.items()}

    def read(self, c, seed, with_labels, say, shard=None):
        folder = self.scan(c)
        if folder.skipped:
            say(f"note: skipped {len(folder.skipped)} unreadable images (data.bad_images="
                f"'skip'), e.g. {folder.skipped[0]}")
        if folder.decoded_bytes(c.image_size) > c.in_memory_mb * 2 ** 20:
            return _streamed_folder(c, folder, seed, with_labels, say, shard)
        return Found(self.arrays(c, folder), folder.class_names)
