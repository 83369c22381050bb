"""OAuth tokens at rest (sync/tokens.py): encrypted, on both databases, with clear key errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from connectors.base import StoredToken
from sync.ledger import OAuthToken
from sync.tokens import (
    SECRET_KEY_ENV,
    TokenKeyError,
    TokenStore,
    generate_key,
    key_from_environment,
)

TOKENS = OAuthToken.__table__  # type: ignore[attr-defined]
REFRESH = "rt-7f3a-secret-refresh-token"
PAYLOAD = {"access_token": "at-91c2-secret-access", "refresh_token": REFRESH, "realm": "4620"}


@pytest.fixture
def secret_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = generate_key()
    monkeypatch.setenv(SECRET_KEY_ENV, key)
    return key


def test_tokens_round_trip_with_the_key_from_the_environment(
    engine: Engine, secret_key: str
) -> None:
    access_expiry = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    refresh_expiry = access_expiry + timedelta(days=100)
    TokenStore(engine, key_from_environment()).save(
        "quickbooks", PAYLOAD, access_expiry, refresh_expiry
    )

    # A new store, as after a restart: only the environment carries the key.
    loaded = TokenStore(engine, key_from_environment()).load("quickbooks")

    assert loaded == StoredToken(PAYLOAD, access_expiry, refresh_expiry)
    assert TokenStore(engine, key_from_environment()).load("outlook") is None


def test_saving_replaces_the_systems_tokens(engine: Engine, secret_key: str) -> None:
    store = TokenStore(engine, key_from_environment())
    store.save("quickbooks", PAYLOAD)
    store.save("quickbooks", PAYLOAD | {"refresh_token": "rt-rotated"})
    store.save("outlook", {"refresh_token": "other"})

    loaded = store.load("quickbooks")
    assert loaded is not None and loaded.payload["refresh_token"] == "rt-rotated"
    assert (loaded.access_expires_at, loaded.refresh_expires_at) == (None, None)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(TOKENS)).scalar_one() == 2


def test_the_stored_ciphertext_does_not_contain_the_tokens(engine: Engine, secret_key: str) -> None:
    TokenStore(engine, key_from_environment()).save("quickbooks", PAYLOAD)

    with engine.connect() as connection:
        stored = bytes(connection.execute(select(TOKENS.c.ciphertext)).scalar_one())

    for secret in (REFRESH, PAYLOAD["access_token"], "refresh_token", "4620"):
        assert secret.encode() not in stored
    assert secret_key.encode() not in stored


def test_a_wrong_key_is_a_clear_error_naming_the_variable(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, secret_key: str
) -> None:
    TokenStore(engine, key_from_environment()).save("quickbooks", PAYLOAD)
    other_key = generate_key()
    monkeypatch.setenv(SECRET_KEY_ENV, other_key)

    with pytest.raises(TokenKeyError) as raised:
        TokenStore(engine, key_from_environment()).load("quickbooks")

    message = str(raised.value)
    assert SECRET_KEY_ENV in message
    assert "'quickbooks'" in message
    assert "cannot be decrypted" in message
    for secret in (secret_key, other_key, REFRESH):
        assert secret not in message


@pytest.mark.parametrize("value", [None, "", "   "])
def test_a_missing_key_says_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(SECRET_KEY_ENV, raising=False)
    else:
        monkeypatch.setenv(SECRET_KEY_ENV, value)

    with pytest.raises(TokenKeyError) as raised:
        key_from_environment()

    message = str(raised.value)
    assert f"{SECRET_KEY_ENV} is not set" in message
    assert "`clm-sync generate-key`" in message


@pytest.mark.parametrize(
    "value", ["not-a-key", "x" * 44, "Zm9v", "ключ-не-ascii-ключ-не-ascii-ключ-не-ascii-ab"]
)
def test_a_malformed_key_says_how_to_make_one_without_echoing_it(value: str) -> None:
    with pytest.raises(TokenKeyError) as raised:
        key_from_environment({SECRET_KEY_ENV: value})

    message = str(raised.value)
    assert f"{SECRET_KEY_ENV} is not a valid key" in message
    assert "`clm-sync generate-key`" in message
    assert value not in message


def test_the_key_is_read_from_the_given_mapping_and_surrounding_space_ignored() -> None:
    key = generate_key()
    fernet = key_from_environment({SECRET_KEY_ENV: f"  {key}\n"})
    assert fernet.decrypt(fernet.encrypt(b"x")) == b"x"
    assert generate_key() != key
