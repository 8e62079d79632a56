"""`keytrail access`: when each path to the keys was opened and closed for a tenant (docs/access.md)."""

from __future__ import annotations

import click

from analytics import connect, run_query
from keytrail.cli import cli, lake_option, reports_errors
from keytrail.commands.analytics import tenants_options
from keytrail.output import Output, output_options, outside_lake, require_tenant, tenants_in_effect, write_relation


@cli.command(name="access")
@click.option("--tenant", help="Tenant id (default: every tenant).")
@lake_option
@tenants_options
@output_options()
@reports_errors
def access_command(tenant: str | None, lake: str, tenants: str | None, memory_limit: str, output: Output) -> None:
    """Each path a tenant had to the keys — VPC peering, Transit Gateway attachment, HSM security-group CIDR,
    crypto user, KMS grant, key policy, custom key store — with when it was opened and closed, by whom, the
    evidence event ids, and the tenant's last key operation (after closed_at: use did not stop)."""
    output = outside_lake(output, lake)  # before the query runs
    con = connect(lake, tenants, memory_limit=memory_limit)
    tenants_in_effect(con)
    require_tenant(con, tenant)
    write_relation(run_query(con, "tenant_access", {"tenant": tenant}), output)
