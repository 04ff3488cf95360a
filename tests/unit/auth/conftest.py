"""In-process fixtures: the reference Authority app reached through ``httpx.ASGITransport`` (no sockets; the
socket/TLS paths are covered by tests/integration/auth)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from zastava.auth.authority import AuthorityConfig, ReferenceAuthority, hash_secret

ISSUER = "https://authority.test"
SECRET = "s3cret-observer"


class SwitchableTransport(httpx.AsyncBaseTransport):
    """Delegates to the app; ``down = True`` makes every request fail to connect (Authority outage)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


def authority_config(**overrides: Any) -> AuthorityConfig:
    data: dict[str, Any] = {
        "issuer": ISSUER,
        "tenants": ["tenant-01", "tenant-02"],
        "clients": [
            {
                "clientId": "observer",
                "tenant": "tenant-01",
                "secretSha256": hash_secret(SECRET),
                "scopes": ["api:scanner.runtime.write"],
            }
        ],
    }
    data.update(overrides)
    return AuthorityConfig.model_validate(data)


@pytest.fixture
def authority() -> ReferenceAuthority:
    return ReferenceAuthority(authority_config())


@pytest.fixture
async def transport(authority: ReferenceAuthority) -> SwitchableTransport:
    return SwitchableTransport(authority.app)


@pytest.fixture
async def http(transport: SwitchableTransport) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport) as client:
        yield client
