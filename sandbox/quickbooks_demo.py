"""``clm-sync demo`` with QuickBooks: the business's company on the stand-in, already connected.

The demo cannot send anyone to a consent page, so it plays the admin: it runs the consent flow
against the stand-in and stores the tokens in the demo ledger, encrypted like any others. That
needs ``CLM_SYNC_SECRET_KEY``; without one the demo makes a key, keeps it in ``DIR/clm-sync.key``
and uses it for this run (export it to run other commands on a kept demo folder). The custom
fields the push writes are defined in the company up front, as ``clm-sync setup`` would.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from config.models import QuickBooksSource
from connectors.quickbooks.auth import QuickBooksAuth
from sandbox.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM_ID, QuickBooksStandIn
from sandbox.synthetic import BusinessSpec
from sync.db import create_ledger_engine, ensure_current_schema
from sync.tokens import SECRET_KEY_ENV, TokenStore, generate_key

LEDGER_FILE = "ledger.db"
KEY_FILE = "clm-sync.key"
SECRET_FILE = "quickbooks-client-secret.txt"  # noqa: S105 (a file name)
FIELDS = (
    ("net_revenue", "Lifetime revenue", ".2f"),
    ("orders", "Orders", ""),
    ("last_purchase", "Last purchase", "%Y-%m-%d"),
)


def _key(folder: Path) -> None:
    if os.environ.get(SECRET_KEY_ENV):
        return
    path = folder / KEY_FILE
    if not path.exists():
        path.write_text(generate_key() + "\n", encoding="utf-8")
        path.chmod(0o600)
    os.environ[SECRET_KEY_ENV] = path.read_text(encoding="utf-8").strip()


def start_demo_company(spec: BusinessSpec, folder: Path, servers: ExitStack) -> str:
    """Start the stand-in, connect it, and return the source's YAML (see DemoSource)."""
    stand_in = servers.enter_context(QuickBooksStandIn(spec))
    for _, label, _ in FIELDS:
        stand_in.company.define_custom_field(label)
    (folder / SECRET_FILE).write_text(CLIENT_SECRET + "\n", encoding="utf-8")
    accounts = stand_in.company.marketing_accounts()
    source = QuickBooksSource.model_validate(
        {
            "type": "quickbooks",
            "name": "quickbooks",
            "realm_id": REALM_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "api_url": stand_in.url,
            "graphql_url": stand_in.graphql_url,
            "discovery_url": stand_in.discovery_url,
            "marketing_accounts": accounts,
            "push": {"fields": [{"metric": m, "field": f, "format": s} for m, f, s in FIELDS]},
        }
    )
    _key(folder)
    engine = create_ledger_engine(f"sqlite:///{folder / LEDGER_FILE}")
    try:
        ensure_current_schema(engine)
        auth = QuickBooksAuth(source, TokenStore(engine))
        auth.complete(stand_in.consent(auth.consent_url()))
    finally:
        engine.dispose()
    account_lines = "".join(f'      "{name}": {channel}\n' for name, channel in accounts.items())
    field_lines = "".join(
        f'        - {{metric: {metric}, field: "{label}", format: "{spec_}"}}\n'
        for metric, label, spec_ in FIELDS
    )
    return (
        "  - name: quickbooks\n"
        "    type: quickbooks\n"
        f'    realm_id: "{REALM_ID}"\n'
        f"    client_id: {CLIENT_ID}\n"
        f"    client_secret: ${{file:{SECRET_FILE}}}\n"
        f"    api_url: {stand_in.url}\n"
        f"    graphql_url: {stand_in.graphql_url}\n"
        f"    discovery_url: {stand_in.discovery_url}\n"
        "    schedule:\n"
        "      every: 15m\n"
        "    marketing_accounts:\n"
        f"{account_lines}"
        "    push:\n"
        "      fields:\n"
        f"{field_lines}"
    )
