"""The authentication seam: one async callable turns a request into a :class:`Principal` (or refuses it).

Handlers only ever see the principal: its tenant scopes every read and write, its scopes gate each
endpoint. Until Authority OpTok/DPoP verification lands (issue 10), :func:`static_tenant` is the default:
every caller is the configured tenant with all scopes. A verifying authenticator is a drop-in replacement
with the same type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request

__all__ = [
    "ALL_SCOPES",
    "SCOPE_ADMISSION_READ",
    "SCOPE_ADMISSION_WRITE",
    "SCOPE_CATALOG_READ",
    "SCOPE_CATALOG_WRITE",
    "SCOPE_POLICY_READ",
    "SCOPE_POLICY_SIMULATE",
    "SCOPE_RUNTIME_READ",
    "SCOPE_RUNTIME_WRITE",
    "AuthError",
    "Authenticator",
    "Principal",
    "static_tenant",
]

SCOPE_RUNTIME_WRITE = "api:scanner.runtime.write"
SCOPE_RUNTIME_READ = "api:scanner.runtime.read"
SCOPE_POLICY_READ = "api:scanner.policy.read"
SCOPE_CATALOG_WRITE = "api:scanner.catalog.write"
SCOPE_CATALOG_READ = "api:scanner.catalog.read"
SCOPE_ADMISSION_WRITE = "api:scanner.admission.write"
SCOPE_ADMISSION_READ = "api:scanner.admission.read"
#: run a policy simulation (console page and ``POST /policy/simulations``): it reads the inventory and the
#: recorded admission requests, so it also needs the runtime and admission read scopes
SCOPE_POLICY_SIMULATE = "api:scanner.policy.simulate"
ALL_SCOPES = frozenset(
    {
        SCOPE_POLICY_SIMULATE,
        SCOPE_RUNTIME_WRITE,
        SCOPE_RUNTIME_READ,
        SCOPE_POLICY_READ,
        SCOPE_CATALOG_WRITE,
        SCOPE_CATALOG_READ,
        SCOPE_ADMISSION_WRITE,
        SCOPE_ADMISSION_READ,
    }
)


class AuthError(Exception):
    """Authentication (401) or authorisation (403) failed; ``str()`` is safe to return to the caller."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        challenge: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.challenge = challenge
        self.headers = dict(headers or {})
        if challenge:
            self.headers["WWW-Authenticate"] = challenge


@dataclass(frozen=True)
class Principal:
    tenant: str
    subject: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise AuthError(
                403,
                f"token lacks scope {scope}",
                challenge=f'DPoP error="insufficient_scope", error_description="token lacks scope {scope}", '
                f'scope="{scope}"',
            )


#: Turns a request into the caller's principal; raises :class:`AuthError` to refuse it.
Authenticator = Callable[[Request], Awaitable[Principal]]


def static_tenant(
    tenant: str, *, subject: str = "static", scopes: frozenset[str] = ALL_SCOPES
) -> Authenticator:
    principal = Principal(tenant=tenant, subject=subject, scopes=scopes)

    async def authenticate(_request: Request) -> Principal:
        return principal

    return authenticate
