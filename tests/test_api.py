"""The public API: __all__ matches the exports, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import pex_tuner


def test_all_names_resolve():
    for name in pex_tuner.__all__:
        assert getattr(pex_tuner, name) is not None, name
    assert sorted(pex_tuner.__all__) == pex_tuner.__all__


def test_errors_subclass_builtins():
    assert issubclass(pex_tuner.InputDataError, ValueError)
    assert issubclass(pex_tuner.ConfigurationError, ValueError)
    assert issubclass(pex_tuner.NotFittedError, AttributeError)
    assert issubclass(pex_tuner.SchemaMismatchError, pex_tuner.InputDataError)


def test_import_is_quick_and_silent():
    code = (
        "import sys, pex_tuner; "
        "heavy = [m for m in ('ax', 'botorch', 'torch', 'econml', 'numba', 'lightgbm') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""


def test_all_matches_lazy_export_table():
    assert set(pex_tuner.__all__) == set(pex_tuner._EXPORTS) | {"__version__"}
