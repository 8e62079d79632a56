"""The README's quick start: `make demo` installs the runtime only (no test or lint tools), `make test` the dev
extras on top; `keytrail demo` ends with a short per-tenant summary, not the whole usage table."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from keytrail.cli import cli
from tests.conftest import ROOT


def make_plan(target: str, venv: Path) -> str:
    """What make would run for `target` in a fresh venv folder (make -n runs nothing)."""
    cmd = ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def test_make_demo_installs_the_runtime_only(tmp_path: Path) -> None:
    demo = make_plan("demo", tmp_path / "venv")
    assert "pip install -q -e .\n" in demo and "[dev]" not in demo
    assert "pip install -q -e '.[dev]'" in make_plan("test", tmp_path / "venv")


def test_demo_prints_a_short_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["demo", "--no-dashboard", "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    summary = result.stdout[result.stdout.index("Usage per tenant") :].splitlines()
    assert summary[1].split() == ["tenant", "operations", "failures", "keys", "first_seen", "last_seen"]
    assert len(summary) < 15 and summary[-2].startswith("(unattributed)")
