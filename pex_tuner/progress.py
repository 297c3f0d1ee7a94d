"""Progress bars that show in terminals and notebooks, and stay silent in logs and CI."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_bar(total: int, desc: str, progress: bool | None = None) -> Any:
    """A tqdm bar: shown when ``progress`` is True, or (None) in a terminal or a notebook.

    In notebooks the widget bar is used when ipywidgets is installed, a text bar otherwise.
    """
    in_nb = _in_notebook()
    show = progress if progress is not None else (in_nb or sys.stderr.isatty())
    if in_nb:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm
        except ImportError:
            from tqdm.std import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm(total=total, desc=desc, disable=not show, leave=in_nb)
