"""Progress for management commands: a live bar on a terminal, a few plain lines in a log.

tqdm redraws its bar with carriage returns; written to a file or a pipe (a container
log, ``nohup``, CI) every redraw becomes one more line, thousands per job. When the
output is not a terminal, :func:`progress_bar` prints one line per ``step`` percent
instead (21 lines for a whole run at 5 %).
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

__all__ = ["LogProgress", "progress_bar"]


class LogProgress:
    """The part of tqdm's interface the commands use, printing one line per step.

    Without a total, a line is printed at 1, 2, 5, 10, 20, 50, ... items.
    """

    def __init__(
        self,
        *,
        total: int | None,
        desc: str,
        unit: str = "it",
        file: IO[str],
        step: float = 5.0,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.file = file
        self.step = step
        self.n = 0
        self.postfix = ""
        self._last_mark: float | None = None
        self._printed_n: int | None = None
        self._closed = False

    def _mark(self) -> float:
        if self.total:
            done = min(100.0, 100.0 * self.n / self.total)
            return done // self.step * self.step
        mark = 0
        for decade in (1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000):
            for factor in (1, 2, 5):
                if self.n >= decade * factor:
                    mark = decade * factor
        return mark

    def _line(self) -> str:
        if self.total and self.unit == "%":
            text = f"{self.desc}: {self._mark():3.0f}%"
        elif self.total:
            text = f"{self.desc}: {self._mark():3.0f}% ({self.n}/{self.total} {self.unit})"
        else:
            text = f"{self.desc}: {self.n} {self.unit}"
        return f"{text} {self.postfix}".rstrip()

    def refresh(self) -> None:
        mark = self._mark()
        if mark != self._last_mark:
            self._last_mark = mark
            self._print()

    def _print(self) -> None:
        self._printed_n = self.n
        self.file.write(self._line() + "\n")
        self.file.flush()

    def update(self, count: int = 1) -> None:
        self.n += count
        self.refresh()

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text
        if refresh:
            self.refresh()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The final count, unless the last line already said it.
        if self._printed_n != self.n:
            self._print()


def progress_bar(*, total: int | None, desc: str, file: IO[str] | None = None, **options: Any):
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a :class:`LogProgress`."""
    file = file or sys.stderr
    isatty = getattr(file, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(total=total, desc=desc, file=file, **options)
    return LogProgress(total=total, desc=desc, unit=options.get("unit", "it"), file=file)
