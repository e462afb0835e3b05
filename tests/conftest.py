"""Shared fixtures: rosters with the names real classes have, and running the CLI in-process."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

#: Names a roster really holds: accents, apostrophes, a comma (quoted in CSV), Polish letters.
UNICODE_NAMES = ("Siobhán Ní Bhriain", "Zoë O'Connor", "Smith, Jamie-Lee", "Łukasz Dąbrowski")


@pytest.fixture(autouse=True)
def _private_lesson_records(tmp_path_factory, monkeypatch):
    """`generate` records each lesson under $EXITSCAN_DATA: keep tests out of the user's home."""
    monkeypatch.setenv("EXITSCAN_DATA", str(tmp_path_factory.mktemp("exitscan-data")))


@pytest.fixture
def write_roster(tmp_path: Path):
    """Write ``[(id, name), ...]`` as a UTF-8 roster CSV in tmp_path; returns its path."""

    def write(pupils, name: str = "roster.csv") -> Path:
        lines = ["id,name"]
        for pid, pname in pupils:
            quoted = '"' + pname.replace('"', '""') + '"' if ("," in pname or '"' in pname) else pname
            lines.append(f"{pid},{quoted}")
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return write


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_exitscan(monkeypatch, capsys):
    """Run ``exitscan ARGS...`` through the console entry point (`exitscan.cli.main`), in-process.

    Returns the exit code `main` gives the shell, and what it printed. In-process because a
    fresh interpreter (OpenCV, reportlab) costs ~0.5 s a run; one test runs the real script.
    """
    from exitscan.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["exitscan", *(str(a) for a in args)])
        with pytest.raises(SystemExit) as exc:
            main()
        captured = capsys.readouterr()
        code = exc.value.code
        return CliResult(code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err)

    return run
