"""The example notebook runs headless (nbclient) against a small lake, every cell without error."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

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
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert "acme" in str(outputs[-3])  # the per-key usage table names the tenant
