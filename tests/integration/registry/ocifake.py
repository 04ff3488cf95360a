"""An in-test OCI registry (Starlette under uvicorn) for what Debian's distribution 2.8 cannot do: it answers
the OCI 1.1 referrers API, can throttle with 429 + Retry-After, and can demand bearer tokens via the
``WWW-Authenticate`` challenge flow. It is used in addition to the real registry, never instead of it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness.servers import ThreadedServer

OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class FakeRegistry:
    def __init__(self, *, referrers_api: bool = True, bearer: tuple[str, str] | None = None) -> None:
        self.http = ThreadedServer(lifespan="off")
        self.port = self.http.port
        self.referrers_api = referrers_api
        self.bearer = bearer  # (user, password) required at the token endpoint
        self.throttle_remaining = 0
        self.retry_after = "1"
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.uploads: dict[str, bytearray] = {}
        self.tokens: set[str] = set()
        self.requests = 0
        self.throttled = 0
        self.delay = 0.0  # seconds each manifest request takes
        self.inflight = 0
        self.max_inflight = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # ----------------------------------------------------------------------------------------- handlers

    def _gate(self, request: Request) -> Response | None:
        self.requests += 1
        if self.throttle_remaining != 0:
            if self.throttle_remaining > 0:
                self.throttle_remaining -= 1
            self.throttled += 1
            return Response(status_code=429, headers={"Retry-After": self.retry_after})
        if self.bearer is not None:
            header = request.headers.get("authorization", "")
            if not header.startswith("Bearer ") or header[7:] not in self.tokens:
                challenge = (
                    f'Bearer realm="{self.url}/token",service="fake",scope="repository:'
                    f'{request.path_params.get("name", "")}:pull"'
                )
                return Response(status_code=401, headers={"WWW-Authenticate": challenge})
        return None

    async def token(self, request: Request) -> Response:
        assert self.bearer is not None
        header = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{self.bearer[0]}:{self.bearer[1]}".encode()).decode()
        if header != expected:
            return Response(status_code=401)
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return JSONResponse({"token": token, "expires_in": 300})

    async def v2(self, request: Request) -> Response:
        return self._gate(request) or Response(status_code=200)

    async def manifest(self, request: Request) -> Response:
        gate = self._gate(request)
        if gate:
            return gate
        name, ref = request.path_params["name"], request.path_params["ref"]
        if self.delay:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            try:
                await asyncio.sleep(self.delay)
            finally:
                self.inflight -= 1
        if request.method == "PUT":
            body = await request.body()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            media_type = request.headers.get("content-type", "")
            self.manifests[(name, ref)] = (body, media_type)
            self.manifests[(name, digest)] = (body, media_type)
            return Response(status_code=201, headers={"Docker-Content-Digest": digest})
        item = self.manifests.get((name, ref))
        if item is None:
            return Response(status_code=404)
        body, media_type = item
        headers = {
            "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest(),
            "Content-Type": media_type,
            "Content-Length": str(len(body)),
        }
        return Response(b"" if request.method == "HEAD" else body, headers=headers)

    async def referrers(self, request: Request) -> Response:
        gate = self._gate(request)
        if gate:
            return gate
        if not self.referrers_api:
            return Response(status_code=404)
        name, digest = request.path_params["name"], request.path_params["digest"]
        wanted = request.query_params.get("artifactType")
        entries = []
        for (repo, ref), (body, media_type) in self.manifests.items():
            if repo != name or not ref.startswith("sha256:"):
                continue
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            if (doc.get("subject") or {}).get("digest") != digest:
                continue
            artifact_type = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
            if wanted and artifact_type != wanted:
                continue
            entries.append(
                {
                    "mediaType": media_type,
                    "digest": ref,
                    "size": len(body),
                    "artifactType": artifact_type,
                    **({"annotations": doc["annotations"]} if doc.get("annotations") else {}),
                }
            )
        headers = {"Content-Type": OCI_INDEX}
        if wanted:
            headers["OCI-Filters-Applied"] = "artifactType"
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
        return Response(body, headers=headers)

    async def blob(self, request: Request) -> Response:
        gate = self._gate(request)
        if gate:
            return gate
        data = self.blobs.get(request.path_params["digest"])
        if data is None:
            return Response(status_code=404)
        return Response(b"" if request.method == "HEAD" else data, headers={"Content-Length": str(len(data))})

    async def upload_start(self, request: Request) -> Response:
        gate = self._gate(request)
        if gate:
            return gate
        upload = uuid.uuid4().hex
        self.uploads[upload] = bytearray()
        name = request.path_params["name"]
        return Response(status_code=202, headers={"Location": f"/v2/{name}/blobs/uploads/{upload}"})

    async def upload_finish(self, request: Request) -> Response:
        gate = self._gate(request)
        if gate:
            return gate
        data = bytes(self.uploads.pop(request.path_params["upload"])) + await request.body()
        digest = request.query_params["digest"]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return Response(status_code=400)
        self.blobs[digest] = data
        return Response(status_code=201, headers={"Docker-Content-Digest": digest})

    # -------------------------------------------------------------------------------------------- life

    def start(self) -> FakeRegistry:
        app = Starlette(
            routes=[
                Route("/token", self.token),
                Route("/v2/", self.v2),
                Route("/v2/{name:path}/manifests/{ref}", self.manifest, methods=["GET", "HEAD", "PUT"]),
                Route("/v2/{name:path}/referrers/{digest}", self.referrers),
                Route("/v2/{name:path}/blobs/uploads/", self.upload_start, methods=["POST"]),
                Route("/v2/{name:path}/blobs/uploads/{upload}", self.upload_finish, methods=["PUT"]),
                Route("/v2/{name:path}/blobs/{digest}", self.blob, methods=["GET", "HEAD"]),
            ]
        )
        self.http.app = app
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()
