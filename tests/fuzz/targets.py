"""The fuzz targets of issue 21: AdmissionReview, runtime-event ND-JSON, gzip bodies, JWT/DPoP, ELF and shell
scripts. Each feeds mutated cases to the product's own entry (the webhook's and the backend's ASGI apps, the
OpTok/DPoP verifier, the build-id reader, the EntryTrace tracer) and classifies the outcome: handled (any
answer below 500, or the documented refusal), ``5xx``, or ``crash`` (an exception escaping the entry)."""

from __future__ import annotations

import asyncio
import gzip
import random
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.fuzz.mutate import json_text, mutate_bytes, mutate_json


@dataclass
class Outcome:
    kind: str  # "ok" | "5xx" | "crash"
    detail: str = ""


class _Clock:
    """Times the call into the product only (making a case is the fuzzer's cost, not the target's)."""

    def __init__(self) -> None:
        self.ms = 0.0

    def __enter__(self) -> _Clock:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ms += (time.perf_counter() - self._start) * 1000


CLOCK = _Clock()


async def asgi_call(app: Any, method: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """One request through an ASGI app (what uvicorn hands it); returns the response status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-length", str(len(body)).encode()), *headers],
        "scheme": "https",
        "server": ("127.0.0.1", 8443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)] or [b""]
    status = 0

    async def receive() -> dict[str, Any]:
        if not chunks:
            return {"type": "http.disconnect"}
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


class Target:
    name = ""

    def setup(self, work: Path) -> None: ...

    def case(self, rng: random.Random) -> Outcome:
        raise NotImplementedError

    def close(self) -> None: ...


class _Async(Target):
    def setup(self, work: Path) -> None:
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def status(self, app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> Outcome:
        try:
            with CLOCK:
                status = self.loop.run_until_complete(asgi_call(app, "POST", path, body, headers))
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc}"[:500])
        return Outcome("5xx" if status >= 500 or status == 0 else "ok", f"HTTP {status}")


# ------------------------------------------------------------------------------------- AdmissionReview


class AdmissionReviewTarget(_Async):
    name = "admission-review"

    def setup(self, work: Path) -> None:
        super().setup(work)
        from tests.unit.webhook.reviews import pod_with, review
        from tests.unit.webhook.test_app import make_app

        self.app = make_app()
        self.seeds = [
            review(),
            review(pod_with({"app": "ghcr.io/acme/api@sha256:" + "a" * 64, "side": "nginx:latest"})),
            review(namespace="dev", operation="UPDATE", old=pod_with({"a": "busybox"})),
        ]

    def case(self, rng: random.Random) -> Outcome:
        value = mutate_json(rng, rng.choice(self.seeds))
        body = json_text(rng, value)
        return self.status(self.app, "/admit", body, [(b"content-type", b"application/json")])


# ------------------------------------------------------------------------------------- backend bodies


class _Backend(_Async):
    def setup(self, work: Path) -> None:
        super().setup(work)
        from tests.harness.events import envelope, make_event
        from zastava.backend.app import create_app
        from zastava.config import BackendServer, RateCap

        settings = BackendServer(
            store=f"sqlite:///{work / 'fuzz.db'}",
            tenant_rate=RateCap(events_per_second=1e9, burst=10**9),
            node_rate=RateCap(events_per_second=1e9, burst=10**9),
        )
        self.app = create_app(settings, purge=False)
        self.lines = [orjson.dumps(envelope(make_event(i, node=f"fuzz-{i % 3}"))) for i in range(8)]

    def close(self) -> None:
        self.app.service.store.close()
        super().close()

    def ndjson(self, rng: random.Random) -> bytes:
        out = []
        for _ in range(rng.randint(1, 6)):
            line = rng.choice(self.lines)
            roll = rng.random()
            if roll < 0.4:
                line = json_text(rng, mutate_json(rng, orjson.loads(line)))
            elif roll < 0.6:
                line = mutate_bytes(rng, line, rng.randint(1, 4))
            out.append(line)
        body = b"\n".join(out)
        if rng.random() < 0.1:
            body = b"[" + b",".join(out) + b"]"
        return body


class RuntimeEventTarget(_Backend):
    name = "runtime-event-ndjson"

    def case(self, rng: random.Random) -> Outcome:
        headers = [(b"content-type", b"application/x-ndjson")]
        return self.status(self.app, "/api/v1/scanner/runtime/events", self.ndjson(rng), headers)


class GzipBodyTarget(_Backend):
    name = "gzip-body"

    def case(self, rng: random.Random) -> Outcome:
        data = self.ndjson(rng)
        roll = rng.random()
        if roll < 0.3:
            body = mutate_bytes(rng, gzip.compress(data, mtime=0), rng.randint(1, 6))
        elif roll < 0.5:  # several members, some empty, maybe padding
            body = b"".join(
                gzip.compress(rng.choice([data, b""]), mtime=0) for _ in range(rng.randint(1, 80))
            )
            body += b"\0" * rng.choice([0, 0, 7, 512])
        elif roll < 0.6:  # a small bomb
            body = zlib.compress(
                rng.choice([b"\n", b"{}", b"\0", b"["]) * rng.randint(10**5, 10**6), 9, wbits=31
            )
        elif roll < 0.7:
            body = gzip.compress(data)[: rng.randint(0, 40)]
        else:
            body = gzip.compress(data, mtime=0)
        path = rng.choice(["/api/v1/scanner/runtime/events", "/api/v1/scanner/admission/decisions"])
        headers = [(b"content-type", b"application/x-ndjson"), (b"content-encoding", b"gzip")]
        return self.status(self.app, path, body, headers)


# ------------------------------------------------------------------------------------- JWT / DPoP


class JwtDpopTarget(Target):
    name = "jwt-dpop"
    URL = "https://backend.example/api/v1/scanner/runtime/events"

    def setup(self, work: Path) -> None:
        from joserfc.jwk import ECKey, KeySet

        from zastava.auth import OpTokVerifier, VerifierSettings
        from zastava.auth.dpop import DpopKey

        self.loop = asyncio.new_event_loop()
        self.key = ECKey.generate_key("P-256", private=True, parameters={"kid": "k1"})
        self.dpop = DpopKey()
        settings = VerifierSettings(
            issuer="https://issuer.example",
            tenants=frozenset({"tenant-01"}),
            public_base_url="https://backend.example",
            jwks_uri="https://issuer.example/jwks",
        )
        self.verifier = OpTokVerifier(settings)
        jwks = self.verifier.jwks
        jwks._keys = KeySet.import_key_set({"keys": [self.key.as_dict(private=False)]})
        jwks._kids = frozenset({"k1"})
        jwks._fetched_at = jwks._attempted_at = float("inf")  # never fetched: the key set is given

    def close(self) -> None:
        self.loop.run_until_complete(self.verifier.aclose())
        self.loop.close()

    def _claims(self) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": "https://issuer.example",
            "sub": "observer",
            "aud": ["scanner", "tenant-01"],
            "tenant": "tenant-01",
            "scope": "api:scanner.runtime.write",
            "iat": now,
            "exp": now + 300,
            "jti": "t-1",
            "cnf": {"jkt": self.dpop.jkt},
        }

    def _token(self, claims: Any, header: Any) -> str:
        from joserfc import jws

        return str(jws.serialize_compact(header, orjson.dumps(claims), self.key))

    def case(self, rng: random.Random) -> Outcome:
        from zastava.auth import AuthError

        claims: Any = self._claims()
        header: Any = {"alg": "ES256", "kid": "k1", "typ": "at+jwt"}
        roll = rng.random()
        if roll < 0.35:
            claims = mutate_json(rng, claims)
        elif roll < 0.45:
            header = mutate_json(rng, header)
        try:
            token = self._token(claims, header)
        except Exception:
            token = self._token(self._claims(), {"alg": "ES256", "kid": "k1"})
        url = self.URL if rng.random() < 0.8 else "https://evil.example/api/v1/scanner/runtime/events"
        proof = self.dpop.proof("POST", url, access_token=token)
        roll = rng.random()
        if roll < 0.3:
            token = mutate_bytes(rng, token.encode(), rng.randint(1, 4)).decode("latin-1")
        elif roll < 0.6:
            proof = mutate_bytes(rng, proof.encode(), rng.randint(1, 4)).decode("latin-1")
        elif roll < 0.7:
            proof = ".".join(rng.sample(proof.split("."), 3))
        scheme = rng.choice(["DPoP", "DPoP", "Bearer", "dpop", ""])
        try:
            with CLOCK:
                self.loop.run_until_complete(
                    self.verifier.verify(
                        method="POST",
                        url=self.URL,
                        authorization=f"{scheme} {token}",
                        dpop=proof,
                        required_scopes=("api:scanner.runtime.write",),
                    )
                )
        except AuthError:
            return Outcome("ok", "refused")
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc}"[:500])
        return Outcome("ok", "accepted")


# ------------------------------------------------------------------------------------- ELF


class ElfTarget(Target):
    name = "elf"

    def setup(self, work: Path) -> None:
        candidates = [Path("/bin/true"), Path("/usr/bin/env"), Path(shutil.which("python3") or "/bin/ls")]
        self.seeds = [p.read_bytes()[: 256 * 1024] for p in candidates if p.exists()]

    def case(self, rng: random.Random) -> Outcome:
        from zastava.observer.elf import read_build_id

        data = bytearray(rng.choice(self.seeds))
        if rng.random() < 0.5:  # header fields: program/section header offsets, sizes and counts
            field = rng.choice([(0x20, 8), (0x28, 8), (0x36, 2), (0x38, 2), (0x3A, 2), (0x3C, 2), (0x3E, 2)])
            value = rng.choice([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFFFFFFFFFF, len(data), len(data) - 1, 64])
            data[field[0] : field[0] + field[1]] = (value & ((1 << (8 * field[1])) - 1)).to_bytes(
                field[1], "little"
            )
        body = mutate_bytes(rng, bytes(data), rng.randint(0, 12))
        try:
            with CLOCK:
                result = read_build_id(body)
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc}"[:500])
        return Outcome("ok", result.status)


# ------------------------------------------------------------------------------------- shell scripts


class ShellScriptTarget(Target):
    name = "shell-script"

    def setup(self, work: Path) -> None:
        from tests.unit.observer.entrytrace.corpus import CORPUS, build_base

        self.root = build_base(work / "root")
        self.seeds = [p.read_bytes() for p in sorted(CORPUS.glob("*/*.sh"))]
        self.script = self.root / "entrypoint.sh"

    def case(self, rng: random.Random) -> Outcome:
        from zastava.observer.entrytrace import trace_entrypoint

        script = mutate_bytes(rng, rng.choice(self.seeds), rng.randint(0, 10))
        if rng.random() < 0.2:  # splice two scripts: unbalanced constructs, odd nesting
            other = rng.choice(self.seeds)
            script = script[: rng.randrange(len(script) + 1)] + other[rng.randrange(len(other) + 1) :]
        self.script.write_bytes(script)
        self.script.chmod(0o755)
        env = None if rng.random() < 0.5 else {"PATH": "/usr/local/bin:/usr/bin:/bin", "MODE": "x"}
        try:
            with CLOCK:
                trace_entrypoint(
                    ["/entrypoint.sh", *rng.choice([[], ["--serve"], ["$(x)"]])], root=str(self.root), env=env
                )
        except Exception as exc:
            return Outcome("crash", f"{type(exc).__name__}: {exc}"[:500])
        return Outcome("ok")


TARGETS: dict[str, type[Target]] = {
    t.name: t
    for t in (
        AdmissionReviewTarget,
        RuntimeEventTarget,
        GzipBodyTarget,
        JwtDpopTarget,
        ElfTarget,
        ShellScriptTarget,
    )
}


@dataclass
class Report:
    target: str
    cases: int = 0
    crashes: int = 0
    server_errors: int = 0
    worst_ms: float = 0.0
    seconds: float = 0.0
    findings: list[str] | None = None


def run(name: str, cases: int, seed: int = 0, findings_dir: Path | None = None) -> Report:
    """Run ``cases`` cases of target ``name``; failing inputs are described in the report (and their seeds
    written to ``findings_dir``)."""
    target = TARGETS[name]()
    report = Report(name, findings=[])
    with tempfile.TemporaryDirectory(prefix=f"zastava-fuzz-{name}-") as tmp:
        target.setup(Path(tmp))
        started = time.perf_counter()
        try:
            for index in range(cases):
                case_seed = seed * 1_000_003 + index
                rng = random.Random(f"{name}:{case_seed}")
                CLOCK.ms = 0.0
                outcome = target.case(rng)
                elapsed = CLOCK.ms
                report.cases += 1
                report.worst_ms = max(report.worst_ms, elapsed)
                if outcome.kind != "ok":
                    if outcome.kind == "crash":
                        report.crashes += 1
                    else:
                        report.server_errors += 1
                    note = f"{name} case seed {case_seed}: {outcome.kind} {outcome.detail}"
                    assert report.findings is not None
                    if len(report.findings) < 20:
                        report.findings.append(note)
                    if findings_dir is not None:
                        findings_dir.mkdir(parents=True, exist_ok=True)
                        with (findings_dir / f"{name}.txt").open("a") as out:
                            out.write(note + "\n")
        finally:
            report.seconds = time.perf_counter() - started
            target.close()
    return report
