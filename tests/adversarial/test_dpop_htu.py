"""Issue 21, attack 5: a DPoP proof is bound to the URL the client meant (``htu``). The real backend
(``zastava backend serve``, ``auth: optok``, HTTPS + mTLS) and the reference Authority compare ``htu`` with
their configured public URL (``backendServer.publicBaseUrl``; the Authority's issuer), never with the ``Host``
header a client chooses. On main a proof made for another host passed with a spoofed ``Host``."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import httpx
import pytest

from tests.harness.events import envelope, make_event, ndjson
from tests.integration.auth.conftest import SECRETS, AuthStack, auth_stack  # noqa: F401 (fixture)
from tests.integration.auth.test_backend_publisher_e2e import Raw, _backend_yaml
from tests.integration.observer.publisher.real_backend import EVENTS_PATH, BackendProcess
from zastava.auth import SCOPE_RUNTIME_WRITE
from zastava.auth.dpop import DpopKey


def _start(stack: AuthStack, directory: object, public: bool) -> BackendProcess:
    backend = BackendProcess(directory, config_text=_backend_yaml(stack), scheme="https")  # type: ignore[arg-type]
    if public:
        backend.config_path.write_text(
            backend.config_path.read_text().replace(
                "    auth: optok\n",
                f"    auth: optok\n    publicBaseUrl: https://zastava-backend.example:{backend.port}\n",
            )
        )
    backend.start(verify=ssl.create_default_context(cafile=str(stack.pki.ca)))
    return backend


@pytest.fixture(scope="module")
def backends(
    auth_stack: AuthStack,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[BackendProcess, BackendProcess]]:
    plain = _start(auth_stack, tmp_path_factory.mktemp("htu-plain"), public=False)
    try:
        public = _start(auth_stack, tmp_path_factory.mktemp("htu-public"), public=True)
        try:
            yield plain, public
        finally:
            public.stop()
    finally:
        plain.stop()


async def _send(raw: Raw, backend: BackendProcess, proof_url: str, host: str | None) -> httpx.Response:
    """POST one event to the backend's socket with a proof made for ``proof_url`` and ``Host: host``."""
    headers = {"Content-Type": "application/x-ndjson", **await raw.provider.headers("POST", proof_url)}
    if host is not None:
        headers["Host"] = host
    body = ndjson([envelope(make_event(abs(hash(proof_url)) % 100_000, node="htu"))])
    return await raw.http.post(backend.url + EVENTS_PATH, content=body, headers=headers)


async def test_a_spoofed_host_does_not_make_a_foreign_proof_valid(
    auth_stack: AuthStack,  # noqa: F811
    backends: tuple[BackendProcess, BackendProcess],
) -> None:
    plain, _public = backends
    raw = Raw(auth_stack, "observer", scopes=[SCOPE_RUNTIME_WRITE])
    try:
        foreign = "https://evil.example" + EVENTS_PATH
        response = await _send(raw, plain, foreign, "evil.example")
        assert response.status_code == 401, response.text
        assert "htu" in response.headers.get("www-authenticate", "")
        # the proof for the address the client really connected to is accepted
        assert (await _send(raw, plain, plain.url + EVENTS_PATH, None)).status_code in (200, 202)
    finally:
        await raw.aclose()


async def test_htu_is_compared_with_the_configured_public_base_url(
    auth_stack: AuthStack,  # noqa: F811
    backends: tuple[BackendProcess, BackendProcess],
) -> None:
    _plain, public = backends
    public_url = f"https://zastava-backend.example:{public.port}{EVENTS_PATH}"
    raw = Raw(auth_stack, "observer", scopes=[SCOPE_RUNTIME_WRITE])
    try:
        # behind a proxy/Service the client names the public URL: accepted, whatever Host says
        assert (await _send(raw, public, public_url, None)).status_code in (200, 202)
        assert (await _send(raw, public, public_url, "evil.example")).status_code in (200, 202)
        # a proof for the socket address (not the public URL) or another host is refused, Host spoofed or not
        assert (await _send(raw, public, public.url + EVENTS_PATH, None)).status_code == 401
        for host in (None, "evil.example"):
            response = await _send(raw, public, "https://evil.example" + EVENTS_PATH, host)
            assert response.status_code == 401, response.text
    finally:
        await raw.aclose()


async def test_the_authority_compares_htu_with_its_issuer(auth_stack: AuthStack) -> None:  # noqa: F811
    """The token endpoint checks ``htu`` against ``{issuer}/token``: a proof for another host is refused
    even when ``Host`` names that host."""
    key = DpopKey()
    form = {"grant_type": "client_credentials", "client_id": "observer", "client_secret": SECRETS["observer"]}
    async with httpx.AsyncClient(
        verify=ssl.create_default_context(cafile=str(auth_stack.pki.ca)), timeout=30
    ) as http:
        token_url = auth_stack.issuer + "/token"
        refused = await http.post(
            token_url,
            data=form,
            headers={"DPoP": key.proof("POST", "https://evil.example/token"), "Host": "evil.example"},
        )
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_dpop_proof", refused.text
        accepted = await http.post(token_url, data=form, headers={"DPoP": key.proof("POST", token_url)})
        assert accepted.status_code == 200, accepted.text
