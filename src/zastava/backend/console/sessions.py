"""Console sessions: an operator who proved an OpTok once gets a session cookie for the browser.

The cookie holds 256 random bits; the store keeps only their sha256 (a stolen database yields no usable
session), with the principal (tenant, subject, scopes), a CSRF token for the one write the console has (the
simulation) and the logout, and the session's expiry: absolute (``sessionSeconds``) and idle
(``idleSeconds``, refreshed at most once a minute so page loads do not all write). Sessions live in the
backend's database, so every replica behind a Service accepts them and a restart logs nobody out.

One-time login links (``zastava console login``) are codes of the same strength, stored hashed, valid
``loginLinkSeconds`` and consumed on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from ...config import Console
from ..auth import Principal
from ..store import Store
from ..store.schema import console_login_links, console_sessions

__all__ = ["ConsoleSession", "SessionStore", "hash_secret"]

TOUCH_EVERY_US = 60_000_000


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", errors="replace")).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    id_hash: str
    principal: Principal
    csrf: str
    method: str
    expires_us: int

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionStore:
    """Synchronous (the app calls it from worker threads), like :class:`Store`."""

    def __init__(self, store: Store, settings: Console) -> None:
        self.store = store
        self.settings = settings

    def create(self, principal: Principal, method: str, now_us: int) -> tuple[str, ConsoleSession]:
        """A new session; returns the cookie value (shown once) and the session."""
        token = secrets.token_urlsafe(32)
        session = ConsoleSession(
            id_hash=hash_secret(token),
            principal=principal,
            csrf=secrets.token_urlsafe(32),
            method=method,
            expires_us=now_us + self.settings.session_seconds * 1_000_000,
        )
        with self.store.transaction() as conn:
            conn.execute(
                console_sessions.insert().values(
                    id_hash=session.id_hash,
                    tenant=principal.tenant,
                    subject=principal.subject[:512],
                    scopes=" ".join(sorted(principal.scopes)),
                    csrf=session.csrf,
                    method=method,
                    created_us=now_us,
                    last_used_us=now_us,
                    expires_us=session.expires_us,
                )
            )
        return token, session

    def load(self, token: str | None, now_us: int) -> ConsoleSession | None:
        """The live session for a cookie value, or None (unknown, expired, idle too long)."""
        if not token or len(token) > 128:
            return None
        id_hash = hash_secret(token)
        s = console_sessions.c
        with self.store.engine.connect() as conn:
            row = conn.execute(select(console_sessions).where(s.id_hash == id_hash)).first()
        if row is None:
            return None
        idle_limit = row.last_used_us + self.settings.idle_seconds * 1_000_000
        if now_us >= row.expires_us or now_us >= idle_limit:
            self.delete(token)
            return None
        if now_us - row.last_used_us >= TOUCH_EVERY_US:
            with self.store.transaction() as conn:
                conn.execute(update(console_sessions).where(s.id_hash == id_hash).values(last_used_us=now_us))
        principal = Principal(tenant=row.tenant, subject=row.subject, scopes=frozenset(row.scopes.split()))
        return ConsoleSession(row.id_hash, principal, row.csrf, row.method, row.expires_us)

    def delete(self, token: str) -> None:
        with self.store.transaction() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == hash_secret(token)))

    # ------------------------------------------------------------------------------------- login links

    def create_link(self, principal: Principal, now_us: int) -> tuple[str, int]:
        """A one-time code for ``principal``; returns (code, expires_us)."""
        code = secrets.token_urlsafe(32)
        expires = now_us + self.settings.login_link_seconds * 1_000_000
        with self.store.transaction() as conn:
            conn.execute(
                console_login_links.insert().values(
                    code_hash=hash_secret(code),
                    tenant=principal.tenant,
                    subject=principal.subject[:512],
                    scopes=" ".join(sorted(principal.scopes)),
                    expires_us=expires,
                )
            )
        return code, expires

    def peek_link(self, code: str | None, now_us: int) -> Principal | None:
        """Whom a link would log in (not consumed), or None when unknown or expired."""
        if not code or len(code) > 128:
            return None
        c = console_login_links.c
        with self.store.engine.connect() as conn:
            row = conn.execute(select(console_login_links).where(c.code_hash == hash_secret(code))).first()
        if row is None or now_us >= row.expires_us:
            return None
        return Principal(tenant=row.tenant, subject=row.subject, scopes=frozenset(row.scopes.split()))

    def redeem_link(self, code: str | None, now_us: int) -> Principal | None:
        """Consume a link: the principal it names, once; None when unknown, used or expired."""
        if not code or len(code) > 128:
            return None
        c = console_login_links.c
        with self.store.transaction() as conn:
            row = conn.execute(
                delete(console_login_links)
                .where(c.code_hash == hash_secret(code))
                .returning(c.tenant, c.subject, c.scopes, c.expires_us)
            ).first()
        if row is None or now_us >= row.expires_us:
            return None
        return Principal(tenant=row.tenant, subject=row.subject, scopes=frozenset(row.scopes.split()))
