"""QuickBooks OAuth: consent, rotation saved before use, a kill mid-rotation, revocation, expiry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from config.models import AppConfig, CsvSource
from connectors.errors import AuthError
from sandbox.http import Faults
from sandbox.quickbooks import QuickBooksStandIn
from sandbox.synthetic import BusinessSpec, write_csv_folder
from sync.cycle import SyncService
from sync.tokens import SECRET_KEY_ENV, TokenStore
from tests.conftest import ROOT
from tests.quickbooks_support import KEY, KEY_TEXT, connect, connector, pull, source_config

TINY = BusinessSpec(seed=5, customers=15)


@pytest.fixture
def stand_in() -> Iterator[QuickBooksStandIn]:
    with QuickBooksStandIn(TINY) as server:
        yield server


class Answers:
    """A console that plays the admin: the browser step is the stand-in's consent."""

    def __init__(self, stand_in: QuickBooksStandIn) -> None:
        self.stand_in = stand_in
        self.said: list[str] = []

    def say(self, text: str) -> None:
        self.said.append(text)

    def ask(self, question: str) -> str:
        url = next(line for text in self.said for line in text.split() if "oauth2" in line)
        return self.stand_in.consent(url)


def test_auth_prints_the_consent_url_and_stores_the_tokens_encrypted(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connector(stand_in, engine)
    console = Answers(stand_in)

    made.authorize(console)

    stored = TokenStore(engine, KEY).load("qbo")
    assert stored is not None
    assert stored.payload["refresh_token"] == stand_in.latest_refresh_token()
    url = next(word for word in console.said[0].split() if "oauth2" in word)
    assert parse_qs(urlsplit(url).query)["scope"] == ["com.intuit.quickbooks.accounting"]
    assert console.said[-1].startswith("Connected QuickBooks company")
    with pytest.raises(Exception, match="decrypted"):
        TokenStore(engine, Fernet(Fernet.generate_key())).load("qbo")


def test_a_rotated_refresh_token_is_saved_before_it_is_used(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    before = stand_in.latest_refresh_token()
    stand_in.company.advance(timedelta(hours=2))  # the access token has expired

    pull(engine, made)

    latest = stand_in.latest_refresh_token()
    stored = TokenStore(engine, KEY).load("qbo")
    assert latest != before
    assert stored is not None and stored.payload["refresh_token"] == latest


KILLED_MID_ROTATION = """
import os, signal, sys
from cryptography.fernet import Fernet
from config.models import AppConfig, QuickBooksSource
from connectors.base import ConnectorContext
from connectors.quickbooks import QuickBooksConnector
from connectors.quickbooks.auth import QuickBooksAuth
from sync.db import create_ledger_engine
from sync.tokens import TokenStore

def killed(self, client):
    os.kill(os.getpid(), signal.SIGKILL)  # the rotated token arrived and is not stored yet

QuickBooksAuth._store = killed
source = QuickBooksSource.model_validate_json(os.environ["QBO_SOURCE"])
app = AppConfig(ledger="sqlite:///unused.db", sources=[source])
store = TokenStore(create_ledger_engine(os.environ["QBO_LEDGER"]), Fernet(os.environ["QBO_KEY"]))
QuickBooksConnector(source, app, ConnectorContext(store)).auth.refresh()
"""


def test_a_kill_between_receiving_and_storing_a_rotated_token_still_authenticates(
    stand_in: QuickBooksStandIn, engine: Engine, tmp_path: Path
) -> None:
    made = connect(stand_in, engine)
    made.auth.refresh()
    stored_before = TokenStore(engine, KEY).load("qbo")
    refreshes = stand_in.refreshes
    env = {
        **os.environ,
        "QBO_SOURCE": source_config(stand_in).model_dump_json(),
        "QBO_LEDGER": engine.url.render_as_string(hide_password=False),
        "QBO_KEY": KEY_TEXT.decode(),
        "PYTHONPATH": str(ROOT),
    }

    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_ROTATION], env=env, cwd=tmp_path, check=False
    )

    assert killed.returncode == -9
    assert stand_in.refreshes == refreshes + 1  # QuickBooks did rotate the token
    assert TokenStore(engine, KEY).load("qbo") == stored_before  # but it was not stored
    stand_in.company.advance(timedelta(hours=2))  # the stored access token has expired too
    restarted = connector(stand_in, engine)
    pull(engine, restarted)
    stored = TokenStore(engine, KEY).load("qbo")
    assert stored is not None
    assert stored.payload["refresh_token"] == stand_in.latest_refresh_token()


def test_an_outdated_refresh_token_is_refused_with_invalid_grant(
    stand_in: QuickBooksStandIn, engine: Engine
) -> None:
    made = connect(stand_in, engine)
    first = made.auth.refresh().refresh_token
    made.auth.refresh()  # uses `first`: the value before it is now dead
    made.auth.refresh()  # and now `first` itself
    made.auth.vault.save("qbo", {"refresh_token": first, "realm_id": made.source.realm_id})

    with pytest.raises(AuthError, match="clm-sync auth qbo"):
        made.auth.refresh()


def test_a_revoked_grant_is_one_clear_error_and_other_sources_keep_syncing(
    stand_in: QuickBooksStandIn,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SECRET_KEY_ENV, Fernet.generate_key().decode())
    write_csv_folder(BusinessSpec(seed=2, customers=10), tmp_path / "exports")
    csv_source = CsvSource(type="csv", name="exports", path=tmp_path / "exports")
    qbo = source_config(stand_in)
    app = AppConfig(ledger=str(engine.url), sources=[csv_source, qbo])
    service = SyncService(app, engine)
    auth = service.connector(qbo).auth  # type: ignore[attr-defined]
    auth.complete(stand_in.consent(auth.consent_url()))
    stand_in.revoke()

    outcome = service.cycle()

    by_name = {result.source: result for result in outcome.sources}
    assert by_name["exports"].status == "ok"
    assert by_name["qbo"].status == "failed"
    assert by_name["qbo"].error is not None
    assert "invalid_grant" in by_name["qbo"].error
    assert "clm-sync auth qbo" in by_name["qbo"].error


def test_status_warns_well_before_the_hard_expiry(engine: Engine) -> None:
    with QuickBooksStandIn(TINY, refresh_lifetime=timedelta(days=20)) as stand_in:
        made = connect(stand_in, engine)
        (note,) = made.status_notes()
        assert "expires on" in note and "clm-sync auth qbo" in note
    with QuickBooksStandIn(TINY) as stand_in:
        assert connect(stand_in, engine).status_notes() == []
        assert "not connected" in connector(stand_in, engine, name="other").status_notes()[0]


def test_the_terminal_shows_a_long_consent_url_on_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from rich.console import Console

    import daemon

    screen = io.StringIO()
    monkeypatch.setattr(daemon, "console", Console(file=screen, width=40))
    url = "https://appcenter.intuit.com/connect/oauth2?" + "&".join(f"p{n}=v{n}" for n in range(40))

    daemon.TerminalConsole().say(f"Open this address:\n\n{url}\n")

    assert url in screen.getvalue().splitlines()


def test_token_calls_are_retried_through_cut_off_and_failed_answers(engine: Engine) -> None:
    faults = Faults(server_error=0.25, truncate=0.25, retry_after=0.01, seed=8)
    with QuickBooksStandIn(TINY, faults=faults) as stand_in:
        made = connect(stand_in, engine)
        for _ in range(6):
            made.auth.refresh()

        stored = TokenStore(engine, KEY).load("qbo")
        assert stored is not None
        assert stored.payload["refresh_token"] == stand_in.latest_refresh_token()
        assert stand_in.server.stats.faults.get("truncate", 0) > 0
