"""Every notebook in notebooks/ runs top to bottom on a small budget (PEX_SMOKE=1)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ should hold the walk-throughs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("PEX_SMOKE", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute(env=dict(os.environ))
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_committed_with_outputs(path):
    """Readers browsing the repository see tables and figures (`make notebooks` saves them)."""
    assert path.stat().st_size < 2_000_000, f"{path.name} is over 2 MB"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    with_output = [c for c in code if c.get("outputs")]
    assert len(with_output) >= len(code) // 2, f"{path.name}: run `make notebooks` and commit"
    kinds = {k for c in with_output for o in c["outputs"] for k in o.get("data", {})}
    assert "text/html" in kinds or "image/png" in kinds, f"{path.name} shows no table or figure"
    for cell in with_output:
        assert not [o for o in cell["outputs"] if o.get("output_type") == "error"], path.name
