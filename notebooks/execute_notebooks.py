"""Execute the walk-through notebooks on a small budget and save them WITH their outputs.

    python notebooks/execute_notebooks.py            # every notebook in this folder
    python notebooks/execute_notebooks.py 01_offline_tuning.ipynb

Runs with ``PEX_SMOKE=1`` (the small budget the test suite uses) so the outputs a reader
sees come from a small run, and with plotly's ``notebook_connected`` renderer, which loads
plotly.js from its CDN instead of embedding the 4 MB library in every notebook. Refuses to
write a notebook over MAX_BYTES (2 MB); a notebook that raises is not written.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
MAX_BYTES = 2_000_000


def execute(path: Path) -> int:
    """Run ``path`` top to bottom and write it back with its outputs; returns its size."""
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, PEX_SMOKE="1", PLOTLY_RENDERER="notebook_connected")
    client = NotebookClient(
        nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    )
    client.execute(env=env)
    for cell in nb.cells:  # execution counts and timings vary run to run; keep diffs small
        cell.get("metadata", {}).pop("execution", None)
    text = nbformat.writes(nb)
    size = len(text.encode("utf-8"))
    if size > MAX_BYTES:
        raise SystemExit(f"{path.name}: {size:,} bytes with outputs, over {MAX_BYTES:,}; not saved")
    path.write_text(text, encoding="utf-8")
    return size


def main(names: list[str]) -> None:
    paths = [HERE / n for n in names] if names else sorted(HERE.glob("*.ipynb"))
    for path in paths:
        t0 = time.perf_counter()
        size = execute(path)
        print(f"{path.name}: executed in {time.perf_counter() - t0:.0f} s, {size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
