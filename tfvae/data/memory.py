"""Images held once: NumPy arrays handed to TensorFlow without a copy.

``tf.constant(array)`` copies an array (here it kept two copies of it alive), and tf.data's
default graph rewrites serialise a pipeline with every tensor it captures, one more copy of an
in-memory data set. `as_tensor` instead shares the array's buffer through DLPack, and
`pipeline_options` turns the rewrites off for pipelines that capture images. TensorFlow's
kernels need 64-byte aligned buffers (NumPy gives 16): `aligned_empty` allocates them so, and
`as_tensor` copies an unaligned array once."""
import numpy as np
import tensorflow as tf

ALIGNMENT = 64  # bytes: EIGEN_MAX_ALIGN_BYTES of TensorFlow's CPU kernels


def aligned_empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)`` whose buffer starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(nbytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """A tensor that shares ``array``'s memory (after one copy into an aligned buffer where it
    is not C-contiguous, 64-byte aligned and writeable). The array must not change afterwards:
    the tensor would see it."""
    if not array.size:
        return tf.constant(array)
    if not (array.flags.c_contiguous and array.flags.writeable
            and array.ctypes.data % ALIGNMENT == 0):
        aligned = aligned_empty(array.shape, array.dtype)
        aligned[...] = array
        array = aligned
    return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


def pipeline_options(options: tf.data.Options) -> tf.data.Options:
    """``options`` without tf.data's default graph rewrites, which would copy the tensors a
    pipeline captures (measured: +1 copy of the images)."""
    options.experimental_optimization.apply_default_optimizations = False
    return options
