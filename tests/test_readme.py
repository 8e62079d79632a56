"""The README says what the product does: every command it lists exists with every option it shows, and the
quick start's quoted output is what `keytrail demo` prints on the sample (numbers included)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from keytrail.cli import cli
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def commands_in_readme() -> list[list[str]]:
    """Every `keytrail …` command line in the README's tables and shell blocks, without its comment."""
    found = set(re.findall(r"`(keytrail [^`]+)`", README))
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        joined = block.replace("\\\n", " ")
        found |= {line.split("keytrail ", 1)[1] for line in joined.splitlines() if "keytrail " in line}
        found = {f if f.startswith("keytrail ") else f"keytrail {f}" for f in found}
    words = []
    for line in sorted(found):
        args = shlex.split(line.split("#")[0].replace("…", "X").replace(">>", " >>"))
        words.append([a for a in args[1:] if not a.startswith(">>") and a != "2>&1"])
    return words


@pytest.mark.parametrize("args", commands_in_readme(), ids=" ".join)
def test_every_command_and_option_the_readme_shows_exists(args: list[str]) -> None:
    """Click parses every option before --help acts, so an option the command lacks fails here."""
    result = CliRunner().invoke(cli, [*[a for a in args if not a.startswith("-h")], "--help"])
    assert result.exit_code == 0, f"keytrail {' '.join(args)}: {result.output}"


def test_the_quick_start_output_is_what_demo_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["demo", "--no-dashboard", "--lake", "keytrail-lake-readme-test"])
    try:
        assert result.exit_code == 0, result.output
        printed = result.output.replace("keytrail-lake-readme-test", "keytrail-lake").replace(f"{ROOT}/", "")
        quoted = README.split("its address is the last line:\n\n```\n", 1)[1].split("```", 1)[0]
        for line in quoted.splitlines():
            if line.startswith(("…", "  URL:")) or not line.strip():
                continue
            fixed = re.sub(r" in \d+\.\d s", " in X s", line.split("…")[0].replace("(…)", ""))
            assert fixed in re.sub(r" in \d+\.\d s", " in X s", printed), f"README line not printed: {line!r}"
    finally:
        import shutil

        shutil.rmtree(ROOT / "keytrail-lake-readme-test", ignore_errors=True)
