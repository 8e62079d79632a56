"""The example notebook runs headless (nbclient) against a small lake, every cell without error."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from analytics.attribute import refresh_attribution
from analytics.fixtures import hsm_row, kms_row, write_events

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "example.ipynb"


def test_example_notebook_runs_headless(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kms = [kms_row(caller_account_id="444455556666"), kms_row("Encrypt", encryption_context={"tenant_id": "acme"})]
    write_events(tmp_path / "lake", kms=kms, hsm=[hsm_row("CN_LOGIN", user_name="acme_cu")])
    (tmp_path / "tenants.toml").write_text('[[tenant]]\nid = "acme"\naccounts = ["444455556666"]\n')
    monkeypatch.setenv("KEYTRAIL_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("KEYTRAIL_TENANTS", str(tmp_path / "tenants.toml"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=120, startup_timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "acme" in str(outputs[-3])  # the per-key usage table names the tenant


def test_the_notebook_opens_from_its_folder_on_the_demo_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Jupyter runs it: cwd notebooks/, no environment variables; the lake `make demo` builds at the repository
    root, and the tenants file that lake was attributed with."""
    repo = tmp_path / "repo"
    (repo / "sample_logs").mkdir(parents=True)
    (repo / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, repo / "notebooks")
    write_events(repo / "keytrail-lake", kms=[kms_row("Encrypt", caller_account_id="444455556666")])
    (repo / "sample_logs" / "tenants.toml").write_text('[[tenant]]\nid = "acme"\naccounts = ["444455556666"]\n')
    refresh_attribution(repo / "keytrail-lake", repo / "sample_logs" / "tenants.toml")
    monkeypatch.delenv("KEYTRAIL_TENANTS", raising=False)
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(repo / "notebooks" / NOTEBOOK.name, as_version=4)
    NotebookClient(
        nb,
        timeout=120,
        startup_timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(repo / "notebooks")}},
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"], outputs
    assert "acme" in str(outputs[-3])
