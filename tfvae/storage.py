"""Writes that a kill or a full disk cannot leave half done, and a full disk said in one line.

Every file of a workdir is written to a temporary name in its own folder and renamed over the
old one (``os.replace`` is atomic on POSIX): a reader, or the run after a SIGKILL, sees the old
file or the new one, never a part. A SavedModel folder is written whole beside the old one and
swapped in (`atomic_dir`). TensorFlow's checkpoints already write a temporary file and rename.

`disk_full` turns the errors a full disk raises (``OSError`` ENOSPC/EDQUOT from Python,
``ResourceExhaustedError`` or ``UnknownError`` "No space left on device" from TensorFlow) into a
`DiskFullError` naming the path, the space free there and the space the run still needs.
"""
import contextlib
import errno
import glob
import os
import re
import shutil
import tempfile
from typing import Optional

from tfvae.errors import DiskFullError

TMP = ".tmp-"  # prefix of every temporary file and folder; left-overs of a kill are removed


@contextlib.contextmanager
def atomic_path(path: str):
    """``with atomic_path(path) as tmp: write(tmp)`` for writers that take a file name (e.g.
    matplotlib's ``savefig``): ``tmp`` is renamed to ``path`` once the block succeeds, and
    removed if it fails (the old file stays)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=TMP, suffix=os.path.splitext(path)[1])
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w", **kwargs):
    """``with atomic_file(path) as f: f.write(...)``: ``path`` appears whole (flushed to disk),
    or not at all (a failed write leaves the old file and no temporary one)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


@contextlib.contextmanager
def atomic_dir(path: str):
    """``with atomic_dir(path) as tmp: write_folder(tmp)``: the folder at ``path`` is replaced
    by ``tmp`` once the block succeeds. Between the two renames (microseconds) ``path`` is
    missing; the old folder is then at ``path`` + ``.old`` and is removed next."""
    parent = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(os.path.abspath(path))
    for stale in glob.glob(os.path.join(parent, f"{TMP}{name}-*")):  # a killed earlier write
        shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f"{TMP}{name}-")
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = os.path.join(parent, f"{TMP}{name}-old")
    if os.path.exists(path):
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


def remove_temporaries(directory: str) -> None:
    """Removes what a killed write left in ``directory`` (not in its subfolders)."""
    for stale in glob.glob(os.path.join(directory, TMP + "*")):
        if os.path.isdir(stale):
            shutil.rmtree(stale, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(stale)


# ---------------------------------------------------------------------- a full disk
_NO_SPACE = re.compile(r"no space left on device|disk quota exceeded|ENOSPC", re.IGNORECASE)


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` is a full disk (or quota), from Python or from TensorFlow."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return type(err).__name__ in ("ResourceExhaustedError", "UnknownError", "InternalError",
                                  "FailedPreconditionError") and bool(_NO_SPACE.search(str(err)))


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path)
               for f in files if os.path.exists(os.path.join(root, f)))


def space_needed(workdir: str) -> int:
    """Bytes a run still writes at most at once: a training backup and a best checkpoint (each
    as large as the newest on disk) and a SavedModel beside the old one, plus 10 MB of logs,
    figures and TensorBoard events."""
    def newest(pattern):
        found = sorted(glob.glob(os.path.join(workdir, pattern)), key=os.path.getmtime)
        prefix = found[-1].rsplit(".", 1)[0] if found else None
        return sum(_size(p) for p in glob.glob(prefix + ".*")) if prefix else 0
    backup = newest(os.path.join("backup", "chief", "ckpt-*.index"))
    best = newest(os.path.join("checkpoints", "best-*.index"))
    saved = _size(os.path.join(workdir, "saved_model"))
    return backup + best + max(saved, best) + 10 * 2 ** 20


def _where(err: BaseException, workdir: str) -> str:
    if isinstance(err, OSError) and err.filename:
        return str(err.filename)
    match = re.search(r"(/[^\s:;,'\"]+)", str(err))
    return match.group(1) if match else workdir


def _mb(n: int) -> str:
    return f"{n / 2 ** 20:,.0f} MB" if n >= 2 ** 20 else f"{n / 2 ** 10:,.0f} kB"


def disk_full(err: BaseException, workdir: str, resumes_at: Optional[int] = None) -> DiskFullError:
    """The one-line error for a full disk met while writing into ``workdir``."""
    where = _where(err, workdir)
    probe = workdir if os.path.exists(workdir) else os.path.dirname(os.path.abspath(workdir))
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        free = 0
    resume = (f"it resumes after epoch {resumes_at}" if resumes_at
              else "it resumes from its last complete epoch")
    return DiskFullError(
        f"no space left on the disk of {probe} while writing {where} ({_mb(free)} free; the run "
        f"needs about {_mb(space_needed(workdir))} more). What was saved before is intact: free "
        f"some space (or move --workdir to a larger disk) and run the same command again; "
        f"{resume}")


def output_file(path: str, flag: str = "--out", suffixes=()) -> str:
    """Makes ``path``'s folder (and its parents) for a file a command is told to write, or
    raises `ConfigError` naming ``flag``: a folder given for a file, a folder that cannot be
    made or written, a suffix not in ``suffixes``."""
    from tfvae.errors import ConfigError
    if not path:
        raise ConfigError(f"{flag} is empty: give the file to write, e.g. {flag}=out/result"
                          f"{suffixes[0] if suffixes else ''}")
    if os.path.isdir(path):
        raise ConfigError(f"{flag}={path} is a folder: give a file name inside it, e.g. "
                          f"{flag}={os.path.join(path, 'out' + (suffixes[0] if suffixes else ''))}")
    suffix = os.path.splitext(path)[1].lower()
    if suffixes and suffix not in suffixes:
        raise ConfigError(f"{flag}={path}: write a {' or '.join(suffixes)} file (the format "
                          "follows the name's suffix)")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as err:
        raise ConfigError(f"{flag}={path}: cannot write into {directory} "
                          f"({err.strerror or err}); choose a folder you can write to") from None
    return path
