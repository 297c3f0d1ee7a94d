"""Progress reporting: timed lines when output is not a terminal, silence when asked."""

from __future__ import annotations

import re

import pytest

from pex_tuner.progress import LogLines, progress_bar


def test_log_lines_in_non_terminal_output(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("PEX_TUNER_PROGRESS_INTERVAL", "0")
    bar = progress_bar(4, "tuning", None)  # pytest's stderr is not a terminal
    assert isinstance(bar, LogLines)
    bar.update(2)
    bar.set_postfix(hv="0.5")
    bar.update(2)
    bar.close()
    bar.close()  # idempotent
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("[pex-tuner] tuning: 0/4 (0%)") and lines[0].endswith("started")
    assert re.match(r"\[pex-tuner\] tuning: 2/4 \(50%\), \d+ s$", lines[1])
    assert re.match(r"\[pex-tuner\] tuning: 4/4 \(100%\), \d+ s, hv=0.5 done$", lines[-1])
    assert len(lines) == 4


def test_log_lines_respect_the_interval(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("PEX_TUNER_PROGRESS_INTERVAL", "3600")
    bar = progress_bar(100, "fit", None)
    for _ in range(100):
        bar.update(1)
    bar.close()
    assert len(capsys.readouterr().err.strip().splitlines()) == 2  # started, done


def test_progress_false_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    bar = progress_bar(3, "quiet", False)
    bar.update(3)
    bar.close()
    assert capsys.readouterr().err == ""
