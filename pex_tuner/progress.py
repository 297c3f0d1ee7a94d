"""Progress on long work: bars in terminals and notebooks, timed log lines elsewhere.

``progress_bar(total, desc, progress)`` returns an object with ``update(n)``,
``set_postfix(**values)`` and ``close()``:

* ``progress=True``: a tqdm bar, wherever the output goes;
* ``progress=None`` (the default): a tqdm bar in a terminal or a notebook, and in logs and CI
  (stderr not a terminal) one plain line at the start, then at most one every
  ``PEX_TUNER_PROGRESS_INTERVAL`` seconds (default 10), and one at the end with the time taken;
* ``progress=False``: nothing.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

__all__ = ["progress_bar"]

INTERVAL_ENV = "PEX_TUNER_PROGRESS_INTERVAL"


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class LogLines:
    """Progress as plain, timed lines on stderr (for logs, CI and redirected output)."""

    def __init__(self, total: int, desc: str, interval: float | None = None) -> None:
        if interval is None:
            try:
                interval = float(os.environ.get(INTERVAL_ENV, "10"))
            except ValueError:
                interval = 10.0
        self.total, self.desc, self.interval = int(total), desc, max(float(interval), 0.0)
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self._emit("started")

    def _emit(self, note: str = "") -> None:
        elapsed = time.monotonic() - self.start
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total > 0 else ""
        tail = f", {self.postfix}" if self.postfix else ""
        extra = f" {note}" if note else ""
        print(
            f"[pex-tuner] {self.desc}: {self.n}/{self.total}{pct}, {elapsed:.0f} s{tail}{extra}",
            file=sys.stderr,
            flush=True,
        )
        self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if time.monotonic() - self.last >= self.interval:
            self._emit()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._emit("done")

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(total: int, desc: str, progress: bool | None = None) -> Any:
    """A progress reporter for ``total`` steps of work named ``desc`` (see the module docstring).

    In notebooks the widget bar is used when ipywidgets is installed, a text bar otherwise.
    """
    in_nb = _in_notebook()
    interactive = in_nb or sys.stderr.isatty()
    if progress is None and not interactive:
        return LogLines(total, desc)
    if in_nb:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm.std import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=desc, disable=progress is False, leave=in_nb)
