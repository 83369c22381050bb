"""OAuth tokens at rest, encrypted with Fernet under a key from the environment.

The key is ``CLM_SYNC_SECRET_KEY`` (``clm-sync generate-key`` prints a new one). Tokens are
saved in their own committed transaction *before* they are used: QuickBooks rotates the
refresh token on every refresh, and a crash between receiving and storing it would lock the
service out until an admin reconnects.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, delete, insert, select

from connectors.base import StoredToken
from sync.ledger import OAuthToken

SECRET_KEY_ENV = "CLM_SYNC_SECRET_KEY"  # noqa: S105 (the variable's name, not a secret)
_TOKEN = OAuthToken.__table__  # type: ignore[attr-defined]


class TokenKeyError(Exception):
    """The encryption key is missing or wrong; the message says how to fix it."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def key_from_environment(environ: Mapping[str, str] | None = None) -> Fernet:
    value = (os.environ if environ is None else environ).get(SECRET_KEY_ENV, "").strip()
    if not value:
        raise TokenKeyError(
            f"{SECRET_KEY_ENV} is not set; create a key with `clm-sync generate-key` and put "
            "it in the service's environment (systemd: EnvironmentFile=)"
        )
    try:
        return Fernet(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise TokenKeyError(
            f"{SECRET_KEY_ENV} is not a valid key (32 url-safe base64 bytes); create one with "
            "`clm-sync generate-key`"
        ) from None


class TokenStore:
    """The ledger's token vault. Without an explicit key it reads ``CLM_SYNC_SECRET_KEY`` on
    first use, so sources without tokens (CSV) run without a key configured."""

    def __init__(self, engine: Engine, fernet: Fernet | None = None) -> None:
        self.engine = engine
        self._fernet = fernet

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = key_from_environment()
        return self._fernet

    def save(
        self,
        system: str,
        payload: Mapping[str, Any],
        access_expires_at: datetime | None = None,
        refresh_expires_at: datetime | None = None,
    ) -> None:
        """Replace the system's tokens and commit at once."""
        ciphertext = self.fernet.encrypt(json.dumps(dict(payload)).encode("utf-8"))
        with self.engine.begin() as connection:
            connection.execute(delete(_TOKEN).where(_TOKEN.c.system == system))
            connection.execute(
                insert(_TOKEN).values(
                    system=system,
                    ciphertext=ciphertext,
                    access_expires_at=access_expires_at,
                    refresh_expires_at=refresh_expires_at,
                    updated_at=datetime.now(UTC),
                )
            )

    def load(self, system: str) -> StoredToken | None:
        with self.engine.connect() as connection:
            row = (
                connection.execute(select(_TOKEN).where(_TOKEN.c.system == system))
                .mappings()
                .first()
            )
        if row is None:
            return None
        try:
            plain = self.fernet.decrypt(bytes(row["ciphertext"]))
        except InvalidToken:
            raise TokenKeyError(
                f"the stored tokens of {system!r} cannot be decrypted with {SECRET_KEY_ENV}; "
                "restore the key they were saved with, or reconnect the system to store new ones"
            ) from None
        return StoredToken(json.loads(plain), row["access_expires_at"], row["refresh_expires_at"])
