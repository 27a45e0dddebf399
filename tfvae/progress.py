"""Progress of long loops (importance-sampled evaluation): done/total, items per second, time left.

On a terminal one line is redrawn in place; in a log (not a terminal) a line is printed every
``interval`` seconds, so a many-minute evaluation is never silent in either.
"""
import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """``Progress(total, "log p(x), k=5000", unit="images")``; call ``update(n)`` after each
    batch of ``n`` items and ``close()`` at the end. ``stream=None`` prints nothing."""

    def __init__(self, total: int, label: str, unit: str = "images", stream=sys.stderr,
                 interval: float = 10.0):
        self.total, self.label, self.unit, self.stream = total, label, unit, stream
        self.interval = interval
        self.done = 0
        self.start = self._last = time.perf_counter()
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {self.done}/{self.total} {self.unit}, {rate:.1f} {self.unit}/s"
        if self.done < self.total and rate > 0:
            text += f", {_duration((self.total - self.done) / rate)} left"
        else:
            text += f", {_duration(elapsed)}"
        return text

    def update(self, n: int) -> None:
        self.done += int(n)
        if self.stream is None:
            return
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line() + "\033[K")
            self.stream.flush()
        elif now - self._last >= self.interval and self.done < self.total:
            self._last = now
            print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if self.stream is None:
            return
        print(("\r" if self.tty else "") + self.line() + ("\033[K" if self.tty else ""),
              file=self.stream, flush=True)
