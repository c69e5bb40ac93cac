"""`modelpress keys`: create and revoke API keys (talks to the database directly)."""

from __future__ import annotations

import sys

import typer

from service.db import new_session
from service.tenants import service as tenants_service

app = typer.Typer(no_args_is_help=True, help="Manage API keys.")


@app.command("create")
def create(tenant: str = typer.Option(..., "--tenant", help="Tenant name (created if new)")) -> None:
    """Create an API key for a tenant and print it (shown only once); its webhook secret goes to stderr."""
    with new_session() as session:
        print(tenants_service.create_key(session=session, tenant_name=tenant))
        secret = tenants_service.get_or_create_tenant(session=session, name=tenant).webhook_secret
    # stderr, so `KEY=$(modelpress keys create ...)` still captures just the key.
    print(f"webhook signing secret of tenant {tenant!r}: {secret}", file=sys.stderr)


@app.command("revoke")
def revoke(prefix: str = typer.Argument(..., help="The key, or its first 10 characters")) -> None:
    """Revoke a key; API processes refuse it (401) within MODELPRESS_AUTH_CACHE_S (5 s by default)."""
    with new_session() as session:
        tenants_service.revoke_key(session=session, prefix=prefix)
    print("revoked")
