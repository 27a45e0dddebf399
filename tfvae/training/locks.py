"""One training per workdir: an OS file lock on ``WORKDIR/.lock``.

The lock is ``fcntl.flock`` on the file, not the file's existence: the kernel drops it when the
holding process ends in any way (SIGKILL included), so a killed run never leaves its workdir
stuck. The file holds who took it (host, pid, start time, command) for the message a second
process gets. Under a multi-worker strategy only the chief takes it (the other workers write
scratch folders of their own, `tfvae.training.distribute.write_dir`). A lock on a network file system
is as good as that file system's ``flock``.
"""
import fcntl
import json
import os
import socket
import sys
import time
from typing import Optional

from tfvae.errors import WorkdirError

LOCK = ".lock"


def holder(workdir: str) -> Optional[dict]:
    """Who holds ``workdir``'s lock (``{"host", "pid", "since", "command"}``), or None when no
    live process does. Takes nothing: it tries the lock and lets go at once."""
    path = os.path.join(workdir, LOCK)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read(fd) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        return json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}


def describe(who: dict) -> str:
    since = who.get("since")
    when = time.strftime(" since %Y-%m-%d %H:%M", time.localtime(since)) if since else ""
    return f"pid {who.get('pid', '?')} on {who.get('host', '?')}{when}"


class WorkdirLock:
    """``with WorkdirLock(workdir): train()``; `acquire` may also be called early and more than
    once (it takes the lock the first time). Raises `WorkdirError` naming the holder when
    another process holds it."""

    def __init__(self, workdir: str):
        self.workdir = workdir
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "WorkdirLock":
        if self._fd is not None:
            return self
        fd = os.open(os.path.join(self.workdir, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _read(fd)
            os.close(fd)
            raise WorkdirError(
                f"--workdir={self.workdir} is in use by another tfvae-train ({describe(who)}); "
                "wait for it to finish or stop it, or choose another --workdir") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                 "since": time.time(), "command": " ".join(sys.argv)}).encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
