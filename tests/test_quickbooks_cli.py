"""The QuickBooks source through the command line: auth at a terminal, setup, once, status."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from sandbox.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM_ID, QuickBooksStandIn
from sandbox.synthetic import BusinessSpec
from sync.db import create_ledger_engine, ensure_current_schema
from sync.tokens import SECRET_KEY_ENV, TokenStore
from tests.conftest import ROOT, clm_sync
from tests.quickbooks_support import KEY, KEY_TEXT, connector


def write_config(folder: Path, stand_in: QuickBooksStandIn) -> Path:
    accounts = "".join(
        f'      "{name}": {channel}\n'
        for name, channel in stand_in.company.marketing_accounts().items()
    )
    path = folder / "clm-sync.yaml"
    path.write_text(
        "ledger: sqlite:///ledger.db\n"
        "sources:\n"
        "  - name: books\n"
        "    type: quickbooks\n"
        f'    realm_id: "{REALM_ID}"\n'
        "    client_id: ${QBO_ID}\n"
        "    client_secret: ${QBO_SECRET}\n"
        f"    api_url: {stand_in.url}\n"
        f"    graphql_url: {stand_in.graphql_url}\n"
        f"    discovery_url: {stand_in.discovery_url}\n"
        "    marketing_accounts:\n"
        f"{accounts}"
        "    push:\n"
        "      fields:\n"
        "        - {metric: net_revenue, field: Lifetime revenue, format: .2f}\n"
        "        - {metric: orders, field: Orders}\n",
        encoding="utf-8",
    )
    return path


def test_setup_status_and_a_cycle_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = BusinessSpec(seed=3, customers=20)
    with QuickBooksStandIn(spec, refresh_lifetime=timedelta(days=10)) as stand_in:
        config = write_config(tmp_path, stand_in)
        engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
        ensure_current_schema(engine)
        made = connector(
            stand_in,
            engine,
            name="books",
            push={"fields": [{"metric": "orders", "field": "Orders"}]},
        )
        made.auth.complete(stand_in.consent(made.auth.consent_url()))  # what `auth` does
        engine.dispose()
        monkeypatch.setenv(SECRET_KEY_ENV, KEY_TEXT.decode())
        monkeypatch.setenv("QBO_ID", CLIENT_ID)
        monkeypatch.setenv("QBO_SECRET", CLIENT_SECRET)

        dry = clm_sync("setup", "quickbooks", "--dry-run", "--config", str(config))
        real = clm_sync("setup", "books", "--config", str(config))
        once = clm_sync("once", "--config", str(config))
        status = clm_sync("status", "--config", str(config))

        assert dry.returncode == 0, dry.stderr
        assert "would create the customer custom field 'Lifetime revenue'" in dry.stdout
        assert real.returncode == 0, real.stderr
        labels = {node["label"] for node in stand_in.company.custom_fields.values()}
        assert labels == {"Lifetime revenue", "Orders"}
        assert once.returncode == 0, once.stdout + once.stderr
        assert any(c.get("CustomField") for c in stand_in.company.live("Customer"))
        assert status.returncode == 0, status.stderr
        assert "expires on" in status.stdout and "clm-sync auth books" in status.stdout


def _read_until(fd: int, marker: bytes, timeout: float = 60.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_auth_at_a_terminal_prints_the_consent_url_and_takes_the_pasted_address(
    tmp_path: Path,
) -> None:
    with QuickBooksStandIn(BusinessSpec(seed=3, customers=10)) as stand_in:
        config = write_config(tmp_path, stand_in)
        env = {
            **os.environ,
            SECRET_KEY_ENV: KEY_TEXT.decode(),
            "QBO_ID": CLIENT_ID,
            "QBO_SECRET": CLIENT_SECRET,
            "COLUMNS": "80",
            "NO_COLOR": "1",
        }
        main, terminal = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "daemon.py"), "auth", "books", "--config", str(config)],
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        try:
            shown = _read_until(main, b"Paste").decode("utf-8", "replace")
            url = next(word for word in shown.split() if "/connect/oauth2?" in word)
            os.write(main, (stand_in.consent(url) + "\n").encode())
            shown += _read_until(main, b"Connected").decode("utf-8", "replace")
            assert process.wait(timeout=60) == 0, shown
        finally:
            process.kill()
            os.close(main)

    assert "Connected QuickBooks company" in shown
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    stored = TokenStore(engine, KEY).load("books")
    engine.dispose()
    assert stored is not None
    assert stored.payload["refresh_token"] == stand_in.latest_refresh_token()
