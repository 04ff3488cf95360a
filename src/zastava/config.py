"""Zastava's configuration: the YAML of spec §6 (root key ``zastava``) as typed, validated settings.

Sources, lowest to highest precedence: built-in defaults, the YAML file, environment variables
``ZASTAVA_<SECTION>__<KEY>…`` (``__`` separates nesting levels; keys are the YAML's camelCase names,
case-insensitive, e.g. ``ZASTAVA_RUNTIME__COLLECT__MAXLIBS=128``). Unknown keys are refused. Integer
sizes accept ``64_000_000``, ``64MB`` and ``50MiB``.

This module depends on nothing else of Zastava's but the image-reference model
(:mod:`zastava.registry.reference`, a leaf module): allow/deny patterns are normalised by the same rules as
the images they are compared with, when the configuration is loaded.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from .registry.errors import InvalidReference
from .registry.reference import normalise_pattern, normalise_tag

__all__ = [
    "ConfigError",
    "ZastavaConfig",
    "authority_guardrail_warnings",
    "example_config_yaml",
    "load_config",
    "parse_size",
    "start_up_problems",
]

log = logging.getLogger("zastava.config")

_SIZE_RE = re.compile(r"^\s*(?P<num>[0-9][0-9_]*)\s*(?P<unit>[kKmMgGtT]i?[bB]?|[bB])?\s*$")
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_size(value: Any) -> Any:
    """``64_000_000`` / ``"64_000_000"`` / ``"64MB"`` / ``"50MiB"`` → int; other values pass through."""
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    match = _SIZE_RE.match(value)
    if match is None:
        return value  # let the int validator produce its error
    number = int(match["num"])
    unit = (match["unit"] or "").lower()
    binary = "i" in unit
    base = unit[:1] if unit[:1] != "b" else ""
    factor = 1024 ** "_kmgt".index(base) if binary and base else _UNITS[base]
    return number * factor


_HOST_NAME = re.compile(
    r"(?i)(?=.{1,253}\.?$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*\.?"
)

Size = Annotated[int, BeforeValidator(parse_size), Field(ge=0)]
PositiveSize = Annotated[int, BeforeValidator(parse_size), Field(ge=1)]


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# ---------------------------------------------------------------------------------------------- spec §6


class Mode(Section):
    observer: bool = True
    webhook: bool = True


class Backend(Section):
    base_address: str = "https://scanner-web.internal"
    policy_path: str = "/api/v1/scanner/policy/runtime"
    events_path: str = "/api/v1/scanner/runtime/events"
    request_timeout_seconds: float = Field(5.0, gt=0, le=300)
    allow_insecure_http: bool = False

    @model_validator(mode="after")
    def _scheme(self) -> Backend:
        address = self.base_address.lower()
        # Empty: no backend. The webhook then decides with local gates and local verification only (trust
        # policies); the observer needs a backend to publish to.
        if address and not address.startswith(("https://", "http://")):
            raise ValueError(f"baseAddress must be an http(s) URL, got {self.base_address!r}")
        if address.startswith("http://") and not self.allow_insecure_http:
            raise ValueError("baseAddress uses plain http but allowInsecureHttp is false")
        for name in ("policy_path", "events_path"):
            if not getattr(self, name).startswith("/"):
                raise ValueError(f"{to_camel(name)} must start with '/'")
        return self


class Authority(Section):
    issuer: str = "https://authority.internal"
    client_id: str = "zastava-observer"
    client_secret_path: str | None = None
    private_key_jwt_path: str | None = None
    audience: list[str] = Field(default_factory=lambda: ["scanner", "zastava"])
    scopes: list[str] = Field(default_factory=lambda: ["api:scanner.runtime.write"])
    refresh_skew_seconds: int = Field(120, ge=0, le=3600)
    require_dpop: bool = True
    require_mutual_tls: bool = True
    allow_static_token_fallback: bool = False
    static_token_path: str | None = None
    client_cert_path: str | None = None
    client_key_path: str | None = None
    ca_bundle_path: str | None = None

    @model_validator(mode="after")
    def _static(self) -> Authority:
        if self.allow_static_token_fallback and not self.static_token_path:
            raise ValueError("allowStaticTokenFallback is true but staticTokenPath is not set")
        return self


class Logging(Section):
    include_scopes: bool = True
    include_activity_tracking: bool = True
    static_scope: dict[str, str] = Field(default_factory=lambda: {"plane": "runtime"})
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class Metrics(Section):
    meter_name: str = "StellaOps.Zastava"
    meter_version: str = "1.0.0"
    common_tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _tags(self) -> Metrics:
        for key in self.common_tags:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key):
                raise ValueError(f"commonTags key {key!r} is not a valid metric label name")
        return self


class Tracing(Section):
    """OpenTelemetry tracing of the spans of spec §8 (observe → batch → post; webhook request → resolve →
    respond), exported over OTLP/HTTP. Off until ``otlpEndpoint`` is set."""

    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces URL, e.g. http://otel-collector.monitoring:4318 "
        "(/v1/traces is appended when the URL has no path); null: tracing off",
    )
    sample_ratio: float = Field(1.0, ge=0, le=1, description="share of root spans kept (parent-based)")
    ca_bundle_path: str | None = Field(None, description="CAs for an https:// endpoint (default: system)")
    timeout_seconds: float = Field(10.0, gt=0, le=60)

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value


class Collect(Section):
    entry_trace: bool = True
    loaded_libs: bool = True
    max_libs: PositiveSize = Field(256, le=65536)
    max_hash_bytes_per_container: Size = 64_000_000
    #: threads reading and hashing one sample's files (2: a cold sample of 256 objects then takes ~0.9x the
    #: wall time of one in-memory sha256 of its bytes instead of ~1.4x; the CPU time does not change)
    hash_threads: int = Field(2, ge=1, le=8)
    max_depth: PositiveSize = Field(48, le=1024)


class Runtime(Section):
    authority: Authority = Field(default_factory=Authority)
    tenant: str = Field("tenant-01", min_length=1, max_length=253)
    environment: str = "prod"
    deployment: str = "cluster-a"
    logging: Logging = Field(default_factory=Logging)
    metrics: Metrics = Field(default_factory=Metrics)
    tracing: Tracing = Field(default_factory=Tracing)
    engine: Literal["containerd", "cri-o", "docker", "auto"] = "auto"
    procfs: str = "/host/proc"
    collect: Collect = Field(default_factory=Collect)


class AdmissionVerify(Section):
    image_signature: bool = True
    sbom_referrer: bool = True
    scanner_policy_pass: bool = True


class TrustKey(Section):
    """A cosign public key (PEM or DER SubjectPublicKeyInfo): exactly one of ``path`` / ``pem``."""

    path: str | None = None
    pem: str | None = None

    @model_validator(mode="after")
    def _one(self) -> TrustKey:
        if (self.path is None) == (self.pem is None):
            raise ValueError("set exactly one of path / pem")
        return self


class TrustKeyless(Section):
    """A Fulcio identity: ``issuer`` and/or ``issuerRegExp``, ``subject`` and/or ``subjectRegExp`` (when
    both forms are given, both must hold; regexes match the whole value). ``trustedRootPath`` defaults to
    ``zastava.registry.trust.trustedRootPath``, else the Sigstore public-good root shipped with
    ``sigstore``."""

    issuer: str | None = Field(None, min_length=1)
    issuer_reg_exp: str | None = Field(None, min_length=1)
    subject: str | None = Field(None, min_length=1)
    subject_reg_exp: str | None = Field(None, min_length=1)
    trusted_root_path: str | None = None

    @model_validator(mode="after")
    def _identity(self) -> TrustKeyless:
        if self.issuer is None and self.issuer_reg_exp is None:
            raise ValueError("set issuer or issuerRegExp")
        if self.subject is None and self.subject_reg_exp is None:
            raise ValueError("set subject or subjectRegExp")
        for name in ("issuer_reg_exp", "subject_reg_exp"):
            pattern = getattr(self, name)
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{to_camel(name)}: invalid regex {pattern!r}: {exc}") from None
        return self


class TrustAuthority(Section):
    """One authority of a trust policy: a ``key`` or a ``keyless`` identity (counts once towards
    ``threshold``)."""

    name: str | None = Field(None, min_length=1, max_length=128)
    key: TrustKey | None = None
    keyless: TrustKeyless | None = None

    @model_validator(mode="after")
    def _one(self) -> TrustAuthority:
        if (self.key is None) == (self.keyless is None):
            raise ValueError("an authority is exactly one of key / keyless")
        return self


class TrustAttestation(Section):
    predicate_type: str = Field(min_length=1, max_length=512)


class TrustPolicyConfig(Section):
    """A trust policy (docs/webhook.md): the images it governs (globs over ``registry/repository``, ``**``
    spans path components), who must have signed them (``threshold`` of ``authorities``), which attestations
    must be present and verified, and whether a failure denies (``enforce``) or warns."""

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
    images: list[str] = Field(min_length=1, max_length=256)
    authorities: list[TrustAuthority] = Field(min_length=1, max_length=32)
    threshold: int = Field(1, ge=1)
    attestations: list[TrustAttestation] = Field(default_factory=list, max_length=32)
    mode: Literal["enforce", "warn"] = "enforce"

    @model_validator(mode="after")
    def _threshold(self) -> TrustPolicyConfig:
        if self.threshold > len(self.authorities):
            raise ValueError(
                f"threshold {self.threshold} exceeds the number of authorities ({len(self.authorities)})"
            )
        return self


class Admission(Section):
    enforce: bool = True
    fail_open_namespaces: list[str] = Field(default_factory=lambda: ["dev", "test"])
    verify: AdmissionVerify = Field(default_factory=AdmissionVerify)
    cache_ttl_seconds: int = Field(300, ge=0, le=86400)
    resolve_tags: bool = True
    # Extensions of spec §4.1 (webhook gates that need no backend).
    allow_warn: bool = True
    registry_allowlist: list[str] = Field(default_factory=list)
    registry_denylist: list[str] = Field(default_factory=list)
    banned_tags: list[str] = Field(default_factory=lambda: ["latest"])
    deny_untagged: bool = True
    base_image_allowlist: list[str] = Field(default_factory=list)
    # Verification at admission (docs/webhook.md): the webhook verifies locally when trust policies are set;
    # the backend's /policy/runtime reads the same section.
    trust_policies: list[TrustPolicyConfig] = Field(default_factory=list, max_length=256)
    #: the mutating path (/mutate) rewrites tag-only images to the digest that was verified
    pin_digests: bool = False

    @field_validator("registry_allowlist", "registry_denylist")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        """Normalised like image names (``index.docker.io/nginx`` → ``docker.io/library/nginx``)."""
        out: list[str] = []
        for index, pattern in enumerate(value):
            try:
                out.append(normalise_pattern(pattern))
            except InvalidReference as exc:
                raise ValueError(f"entry {index}: {exc}") from None
        return list(dict.fromkeys(out))

    @field_validator("banned_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        """Lower-cased: a ban on ``latest`` also bans ``LATEST`` (compared case-insensitively)."""
        out: list[str] = []
        for index, tag in enumerate(value):
            try:
                out.append(normalise_tag(tag))
            except InvalidReference as exc:
                raise ValueError(f"entry {index}: {exc}") from None
        return list(dict.fromkeys(out))

    @model_validator(mode="after")
    def _base_digests(self) -> Admission:
        for digest in self.base_image_allowlist:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                raise ValueError(f"baseImageAllowlist entries must be sha256:<64 hex>, got {digest!r}")
        names = [p.name for p in self.trust_policies]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"trustPolicies names must be unique: {', '.join(duplicates)}")
        return self


class Limits(Section):
    events_per_second: float = Field(50, gt=0)
    burst: PositiveSize = 200
    per_node_queue: PositiveSize = 10_000


class Mounts(Section):
    containerd_sock: str = "/run/containerd/containerd.sock:ro"
    proc: str = "/proc:/host/proc:ro"
    runtime_state: str = "/var/lib/containerd:ro"

    @model_validator(mode="after")
    def _read_only(self) -> Mounts:
        for name in ("containerd_sock", "proc", "runtime_state"):
            value: str = getattr(self, name)
            if not value.endswith(":ro"):
                raise ValueError(f"security.mounts.{to_camel(name)} must be read-only (end with ':ro')")
        return self


class Security(Section):
    mounts: Mounts = Field(default_factory=Mounts)


# ------------------------------------------------------------------------------ extensions of the spec


class Publisher(Section):
    """Event batching and the disk ring buffer (spec §3.3)."""

    batch_max_events: PositiveSize = Field(500, le=100_000)
    flush_interval_seconds: float = Field(2.0, gt=0, le=60)
    gzip: bool = True
    buffer_dir: str = "/var/lib/zastava/buffer"
    buffer_max_bytes: PositiveSize = 50_000_000


class RegistryIdentity(Section):
    """A keyless (Fulcio) identity: issuer and/or issuerRegex, subject and/or subjectRegex (both must hold
    when both are given)."""

    issuer: str | None = None
    issuer_regex: str | None = None
    subject: str | None = None
    subject_regex: str | None = None

    @model_validator(mode="after")
    def _one_each(self) -> RegistryIdentity:
        if self.issuer is None and self.issuer_regex is None:
            raise ValueError("set issuer or issuerRegex")
        if self.subject is None and self.subject_regex is None:
            raise ValueError("set subject or subjectRegex")
        for pattern in (self.issuer_regex, self.subject_regex):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return self


class RegistryTrust(Section):
    """The default signers (cosign keys, keyless identities) — for images no trust policy matches — and the
    offline sigstore trusted root (default: the public-good root shipped with the ``sigstore`` package)."""

    public_key_files: list[str] = Field(default_factory=list)
    keyless_identities: list[RegistryIdentity] = Field(default_factory=list)
    trusted_root_path: str | None = None  # trusted_root.json, or "sigstore-public-good"
    require_tlog_for_keys: bool = False


class Registry(Section):
    """Direct registry access (spec §3.1/§4.1): digest resolution, referrers, signature verification."""

    insecure_registries: list[str] = Field(default_factory=list)
    docker_config_path: str | None = None
    concurrency_per_registry: int = Field(8, ge=1, le=256)
    connect_timeout_seconds: float = Field(5.0, gt=0, le=120)
    read_timeout_seconds: float = Field(10.0, gt=0, le=300)
    max_retries: int = Field(3, ge=0, le=10)
    max_retry_after_seconds: float = Field(10.0, ge=0, le=300)
    tag_cache_ttl_seconds: float = Field(30.0, ge=0, le=86400)
    cache_max_bytes: Size = 64_000_000
    max_manifest_bytes: PositiveSize = 4 * 1024 * 1024
    max_blob_bytes: PositiveSize = 4 * 1024 * 1024
    platform: str = Field("linux/amd64", pattern=r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")
    digest_policy: Literal["index", "platform", "any", "all"] = "index"
    #: one image verification (resolve, signatures, attestations) ends by then, whatever the registry does
    #: (a registry trickling a byte per read keeps each read under readTimeoutSeconds); admission also stops
    #: waiting at its own deadline, and fail-open/closed applies
    verify_timeout_seconds: float = Field(30.0, gt=0, le=300)
    #: internal addresses a registry's manifest/blob redirects may go to although the registry itself is not
    #: on that address class (docs/registry.md, "Redirects"): CIDRs (``10.20.0.0/16``, ``fd00::/8``) or
    #: host names (``minio.storage.svc.cluster.local``); empty by default — a public registry redirecting
    #: to 169.254.169.254, 127.0.0.1 or 10.x is refused and handled as "registry unavailable"
    redirect_allowed_internal: list[str] = Field(default_factory=list, max_length=256)
    trust: RegistryTrust = Field(default_factory=RegistryTrust)

    @field_validator("redirect_allowed_internal")
    @classmethod
    def _cidrs_or_hosts(cls, entries: list[str]) -> list[str]:
        import ipaddress

        for entry in entries:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
                continue
            except ValueError:
                pass
            if not _HOST_NAME.fullmatch(entry.strip()):
                raise ValueError(f"{entry!r} is neither a CIDR nor a host name")
        return [entry.strip() for entry in entries]


def _check_listen(listen: str) -> None:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"must be HOST:PORT, got {listen!r}")


def _is_loopback(listen: str) -> bool:
    """Whether HOST of ``HOST:PORT`` only accepts local callers (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    host = listen.rpartition(":")[0].strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to any address


def _default_node_name() -> str:
    import os
    import socket

    return os.environ.get("NODE_NAME") or socket.gethostname() or "unknown-node"


class ObserverEngines(Section):
    """Where the observer finds the container engines (``runtime.engine`` chooses among them)."""

    containerd_socket: str = "/run/containerd/containerd.sock"
    crio_socket: str = "/var/run/crio/crio.sock"
    docker_host: str = "unix:///var/run/docker.sock"
    containerd_namespace: str = Field("k8s.io", min_length=1, max_length=253)
    log_dir: str = "/var/log/containers"
    connect_timeout_seconds: float = Field(2.0, gt=0, le=60)
    reconnect_initial_seconds: float = Field(0.5, gt=0, le=60)
    reconnect_max_seconds: float = Field(30.0, gt=0, le=3600)


class ObserverDrift(Section):
    """Drift detection (spec §10)."""

    enabled: bool = True
    interval_seconds: float = Field(5.0, gt=0, le=3600)
    process: bool = True
    filesystem: bool = True
    library: bool = True
    network: bool = False
    watched_dirs: list[str] = Field(default_factory=lambda: ["/usr/local/bin", "/opt", "/app"])
    allowed_programs: list[str] = Field(default_factory=list, description="container paths never drift")
    allowed_listening_ports: list[Annotated[int, Field(ge=0, le=65535)]] = Field(default_factory=list)
    max_processes: PositiveSize = Field(4096, le=1_000_000)
    max_files: PositiveSize = Field(10_000, le=1_000_000)
    max_depth: PositiveSize = Field(8, le=64)
    max_hash_bytes: Size = 64_000_000
    max_events_per_container: PositiveSize = Field(256, le=100_000)
    exec_source: Literal["auto", "connector", "poll"] = Field(
        "auto",
        description="where process drift comes from: the kernel proc connector, every exec as it happens "
        "(needs CAP_NET_ADMIN; `auto` uses it when it can be subscribed, else polls /proc every "
        "intervalSeconds), `connector` (refuse to start without it) or `poll`",
    )
    exec_queue: PositiveSize = Field(
        4096,
        le=1_000_000,
        description="exec records waiting to be judged; past it dropped and counted",
    )
    quiet_window_seconds: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="identical findings (image, program, parent program) within this window are one event "
        "and one summary with their count; 0 reports each",
    )

    @model_validator(mode="after")
    def _paths(self) -> ObserverDrift:
        for name in ("watched_dirs", "allowed_programs"):
            for value in getattr(self, name):
                if not value.startswith("/"):
                    raise ValueError(f"{to_camel(name)} entries must be absolute container paths: {value!r}")
        return self


class Observer(Section):
    """The node agent (spec §3): engines, node identity, polling, drift, Kubernetes metadata."""

    node_name: str = Field(default_factory=_default_node_name, min_length=1, max_length=253)
    engines: ObserverEngines = Field(default_factory=ObserverEngines)
    poll_interval_seconds: float = Field(2.0, gt=0, le=3600)
    kubernetes_watch: bool = False
    kubeconfig: str | None = None
    posture_cache_ttl_seconds: int = Field(300, ge=0, le=86400)
    max_concurrent_inspections: PositiveSize = Field(8, le=256)
    drift: ObserverDrift = Field(default_factory=ObserverDrift)
    listen: str | None = Field(
        "0.0.0.0:9090",
        description="HOST:PORT where `observer run` serves /metrics, /healthz and /readyz (plain HTTP, "
        "read-only); null or empty: not served",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if not value:
            return None
        _check_listen(value)
        return value


class RateCap(Section):
    """A token bucket: sustained events per second and the burst allowed on top."""

    events_per_second: float = Field(gt=0)
    burst: PositiveSize


class BackendRetention(Section):
    """How long the reference backend keeps records (by receive time); a purge task enforces it."""

    events_seconds: int = Field(7 * 86400, ge=60)
    admission_decisions_seconds: int = Field(30 * 86400, ge=60)
    delta_scans_seconds: int = Field(30 * 86400, ge=60)
    purge_interval_seconds: float = Field(300, gt=0, le=86400)


class Console(Section):
    """The web console of the reference backend (``/ui``) and its policy simulation."""

    enabled: bool = True
    session_seconds: int = Field(8 * 3600, ge=60, le=30 * 86400, description="absolute session lifetime")
    idle_seconds: int = Field(3600, ge=60, le=30 * 86400, description="a session unused this long ends")
    login_link_seconds: int = Field(300, ge=10, le=3600, description="lifetime of a one-time login link")
    secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: Secure when the request came over TLS (set always behind a TLS proxy)"
    )
    simulation_max_days: int = Field(30, ge=1, le=366)
    simulation_max_requests: PositiveSize = Field(10_000, le=1_000_000)
    simulation_max_workloads: PositiveSize = Field(20_000, le=1_000_000)
    simulation_timeout_seconds: float = Field(120.0, gt=0, le=3600)
    simulation_concurrency: PositiveSize = Field(1, le=64, description="simulations run at once")


class BackendServer(Section):
    """The reference backend (``zastava backend serve``)."""

    listen: str = Field("127.0.0.1:8080", pattern=r"^[^\s:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$")
    store: str = Field("sqlite:///zastava-backend.db", description="sqlite:///PATH or postgresql://…")
    policy_file: str | None = None
    policy_reload_seconds: float = Field(2.0, gt=0, le=3600)
    verify_timeout_seconds: float = Field(
        4.0,
        gt=0,
        le=60,
        description="time /policy/runtime may spend verifying signatures in registries (below the callers' "
        "backend.requestTimeoutSeconds, 5 s); images not verified by then are left out of the answer",
    )
    max_body_bytes: PositiveSize = 16_000_000
    max_decompressed_bytes: PositiveSize = 64_000_000
    max_events_per_request: PositiveSize = Field(10_000, le=1_000_000)
    max_concurrent_requests: PositiveSize = Field(64, le=100_000)
    retention: BackendRetention = Field(default_factory=BackendRetention)
    tenant_rate: RateCap = Field(default_factory=lambda: RateCap(events_per_second=50_000, burst=100_000))
    node_rate: RateCap = Field(default_factory=lambda: RateCap(events_per_second=1_000, burst=10_000))
    static_tenant: str = Field("tenant-01", min_length=1, max_length=253)
    auth: Literal["static", "optok"] | None = Field(
        None,
        description="optok: Authority OpToks verified against zastava.runtime.authority.issuer, DPoP/mTLS "
        "per requireDpop/requireMutualTls; static: every caller is staticTenant with every scope "
        "(development), refused unless listen is a loopback address; unset: static on a loopback listen, "
        "optok otherwise",
    )
    tenants: list[str] = Field(default_factory=list, description="tenants served (optok); empty = any")
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = Field(None, description="CA of client certificates (mTLS binding)")
    public_base_url: str | None = Field(
        None,
        description="the URL clients use to reach this backend (scheme://host[:port]); DPoP proofs' htu is "
        "compared with it, never with the Host header (unset: with the listening socket's own address)",
    )

    console: Console = Field(default_factory=Console)

    @property
    def auth_mode(self) -> Literal["static", "optok"]:
        """``auth``, or when unset what the listen address implies (OpToks unless only loopback can call)."""
        if self.auth is not None:
            return self.auth
        return "static" if _is_loopback(self.listen) else "optok"

    @field_validator("auth")
    @classmethod
    def _static_on_loopback(cls, value: str | None, info: ValidationInfo) -> str | None:
        # static auth gives every caller every scope (catalog writes change admission results): anyone who can
        # reach a non-loopback socket would be an administrator
        listen = info.data.get("listen")
        if value == "static" and listen is not None and not _is_loopback(listen):
            raise ValueError(
                "static (every caller gets every scope) is allowed only when listen is a loopback address, "
                f"but listen is {listen}; use optok"
            )
        return value

    @model_validator(mode="after")
    def _public_base_url(self) -> BackendServer:
        url = self.public_base_url
        if url is not None and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", url):
            raise ValueError(f"publicBaseUrl must be an http(s) URL without query or fragment, got {url!r}")
        return self

    @model_validator(mode="after")
    def _store(self) -> BackendServer:
        if not self.store.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError(
                f"store must be sqlite:///PATH or postgresql://…, got {self.store.split('://')[0]!r}"
            )
        return self


class Webhook(Section):
    """Admission webhook server settings (``zastava.webhook``)."""

    listen: str = "0.0.0.0:8443"
    cert_path: str = "/etc/zastava/tls/tls.crt"
    key_path: str = "/etc/zastava/tls/tls.key"
    cert_reload_interval_seconds: float = Field(2.0, gt=0, le=3600)
    deadline_margin_seconds: float = Field(0.5, ge=0, le=30)
    failure_ttl_seconds: float = Field(5.0, ge=0, le=300)
    cache_max_entries: PositiveSize = Field(10_000, le=10_000_000)
    max_body_bytes: PositiveSize = Field(8 * 1024 * 1024, le=64 * 1024 * 1024)
    decisions_path: str = "/api/v1/scanner/admission/decisions"
    post_decisions: bool = True
    decision_queue: PositiveSize = Field(1000, le=1_000_000)
    decision_batch_max: PositiveSize = Field(100, le=10_000)
    decision_linger_seconds: float = Field(0.2, ge=0, le=10)
    decision_spool_dir: str | None = Field(
        None, description="disk spool of decision records (kept across restarts); unset: a private temp dir"
    )
    decision_spool_max_bytes: PositiveSize = Field(50_000_000, ge=65536)
    #: worker processes sharing the listening socket (``zastava webhook serve``; docs/webhook.md): each
    #: answers on its own core, ``/metrics`` sums them, each spools its own decision records
    workers: int = Field(1, ge=1, le=64)

    @model_validator(mode="after")
    def _check(self) -> Webhook:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"listen must be HOST:PORT, got {self.listen!r}")
        if not self.decisions_path.startswith("/"):
            raise ValueError("decisionsPath must start with '/'")
        return self


class ZastavaConfig(BaseSettings):
    """The ``zastava:`` section of the YAML, with environment overrides."""

    model_config = SettingsConfigDict(
        env_prefix="ZASTAVA_",
        env_nested_delimiter="__",
        case_sensitive=False,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    mode: Mode = Field(default_factory=Mode)
    backend: Backend = Field(default_factory=Backend)
    runtime: Runtime = Field(default_factory=Runtime)
    admission: Admission = Field(default_factory=Admission)
    limits: Limits = Field(default_factory=Limits)
    security: Security = Field(default_factory=Security)
    publisher: Publisher = Field(default_factory=Publisher)
    registry: Registry = Field(default_factory=Registry)
    observer: Observer = Field(default_factory=Observer)
    backend_server: BackendServer = Field(default_factory=BackendServer)
    webhook: Webhook = Field(default_factory=Webhook)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: environment over the YAML (passed as init kwargs by load_config) over defaults.
        return (_ZastavaEnvironment(settings_cls), init_settings)


class _ZastavaEnvironment(PydanticBaseSettingsSource):
    """``ZASTAVA_<SECTION>__<KEY>…`` as a nested mapping keyed by the YAML's camelCase names.

    pydantic-settings' own environment source is not used: for fields with an alias (all of ours) it read the
    *unprefixed* names too (``RUNTIME__TENANT=x`` in a Pod's environment changed the tenant), and it
    keyed what it read by field name (``backend_server``) where the YAML uses the alias (``backendServer``),
    so ``ZASTAVA_BACKEND_SERVER__STORE`` was silently dropped whenever the YAML had a ``backendServer``
    section — the chart's PostgreSQL store among them. Here only the prefix is read, each part matches a
    field's alias or name case-insensitively (``BACKENDSERVER`` or ``BACKEND_SERVER``), and the result merges
    key by key with the YAML. A name whose section is not ours (``ZASTAVA_REQUIRE_REAL``) is not
    configuration; an unknown key inside a section is kept so that validation refuses it by name.
    """

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False  # unused: __call__ builds the whole mapping

    def __call__(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, value in os.environ.items():
            if not name.upper().startswith(_ENV_PREFIX):
                continue
            path = _env_path(name[len(_ENV_PREFIX) :].split("__"))
            if path is None:
                continue
            node = result
            for key in path[:-1]:
                child = node.setdefault(key, {})
                if not isinstance(child, dict):
                    break
                node = child
            else:
                text = value.strip()
                # lists and mappings come as JSON (ZASTAVA_RUNTIME__AUTHORITY__SCOPES='["a","b"]')
                node[path[-1]] = _json_or_text(text) if text[:1] in ("[", "{") else value
        return result


_ENV_PREFIX = "ZASTAVA_"


def _env_path(parts: list[str]) -> list[str] | None:
    model: Any = ZastavaConfig
    path: list[str] = []
    for index, part in enumerate(parts):
        found = None
        if isinstance(model, type) and issubclass(model, BaseModel):
            wanted = part.lower()
            for field_name, info in model.model_fields.items():
                alias = info.alias or field_name
                if wanted in (alias.lower(), field_name.lower(), field_name.replace("_", "").lower()):
                    found = (alias, info.annotation)
                    break
        if found is None:
            if index == 0:
                return None
            path.append(part)  # refused by validation as an unknown key, with its path
            model = None
            continue
        path.append(found[0])
        model = _model_of(found[1])
    return path if parts and all(parts) else None


def _model_of(annotation: Any) -> Any:
    """The BaseModel an annotation holds (``Section``, ``Section | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


class ConfigError(ValueError):
    """Invalid configuration. ``errors`` holds ``(key path, message)`` pairs, key paths from ``zastava``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__("\n".join(f"{path}: {message}" for path, message in errors))


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Aliases of the model at ``loc`` (to suggest the right spelling of a misspelt key)."""
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = next(
            (f for n, f in current.model_fields.items() if part in (n, f.alias)),
            None,
        )
        if field is None:
            return []
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _errors(exc: ValidationError) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = ".".join(["zastava", *(str(p) for p in loc)])
        message = err["msg"]
        if err["type"] == "extra_forbidden" and loc:
            candidates = difflib.get_close_matches(str(loc[-1]), _known_keys(ZastavaConfig, loc[:-1]), n=1)
            message = "unknown key" + (f" (did you mean {candidates[0]!r}?)" if candidates else "")
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        out.append((path, message))
    return out


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([(origin, f"not valid YAML: {exc}")]) from None
    if document is None:
        return {}
    if not isinstance(document, dict) or set(document) - {"zastava"}:
        keys = sorted(map(str, document)) if isinstance(document, dict) else []
        extra = [k for k in keys if k != "zastava"]
        raise ConfigError(
            [(k, "unknown top-level key; the configuration lives under 'zastava:'") for k in extra]
            or [(origin, "the document must be a mapping with the root key 'zastava'")]
        )
    section = document.get("zastava")
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError([("zastava", "must be a mapping")])
    return section


def load_config(
    source: str | Path | None = None,
    *,
    text: str | None = None,
    warn: bool = True,
) -> ZastavaConfig:
    """Load and validate. ``source`` is a YAML path (``-`` is not handled here: pass ``text``)."""
    data: dict[str, Any] = {}
    if text is not None:
        data = _read_yaml(text, "<stdin>")
    elif source is not None:
        path = Path(source)
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([(str(path), f"cannot read: {exc.strerror or exc}")]) from None
        data = _read_yaml(content, str(path))
    try:
        config = ZastavaConfig(**data)
    except ValidationError as exc:
        raise ConfigError(_errors(exc)) from None
    if warn:
        for warning in authority_guardrail_warnings(config):
            log.warning(warning["message"], extra={"zastava_fields": warning})
    return config


def authority_guardrail_warnings(config: ZastavaConfig) -> list[dict[str, Any]]:
    """Structured warnings for every relaxed authority guardrail (spec §7)."""
    authority = config.runtime.authority
    relaxed = []
    if not authority.require_dpop:
        relaxed.append(("requireDpop", False, "OpToks are sent without DPoP proof-of-possession"))
    if not authority.require_mutual_tls:
        relaxed.append(("requireMutualTls", False, "backend calls are made without a client certificate"))
    if authority.allow_static_token_fallback:
        relaxed.append(("allowStaticTokenFallback", True, "a static bootstrap token may be used"))
    return [
        {
            "event": "authority.guardrail.relaxed",
            "key": f"zastava.runtime.authority.{key}",
            "value": value,
            "tenant": config.runtime.tenant,
            "message": f"authority guardrail relaxed: zastava.runtime.authority.{key}={str(value).lower()}; "
            + why,
        }
        for key, value, why in relaxed
    ]


Component = Literal["observer", "webhook", "backend"]


def start_up_problems(
    config: ZastavaConfig, component: Component, *, calls_backend: bool = True
) -> list[tuple[str, str]]:
    """What stops ``component`` from starting with ``config`` on this machine, as ``(key path, message)``.

    One list for both sides: ``observer run``, ``webhook serve`` and ``backend serve`` refuse to start on any
    of these, and ``zastava config validate --component`` reports the same (exit 2), so a config that
    validates starts. ``calls_backend=False`` (``observer run --stdout``: events to stdout, no backend and no
    Authority) leaves out the Authority client's credentials.
    Checks of the model itself (e.g. ``backendServer.auth: static`` on a non-loopback listen) are in
    :func:`load_config` already.
    """
    problems: list[tuple[str, str]] = []
    if component in ("observer", "webhook") and not getattr(config.mode, component):
        problems.append(
            (f"zastava.mode.{component}", f"false: this configuration does not run the {component}")
        )
    if component in ("observer", "webhook") and config.backend.base_address and calls_backend:
        authority = config.runtime.authority
        key = "zastava.runtime.authority."
        if authority.require_mutual_tls and not authority.client_cert_path:
            problems.append(
                (key + "clientCertPath", "requireMutualTls is true but clientCertPath is not set")
            )
        for name in (
            "client_cert_path",
            "client_key_path",
            "ca_bundle_path",
            "client_secret_path",
            "private_key_jwt_path",
        ):
            path = getattr(authority, name)
            if path and not Path(path).is_file():
                problems.append((key + to_camel(name), f"{path} is not a readable file"))
    if component == "backend":
        problems += _backend_problems(config.backend_server)
    if component == "webhook":
        for name in ("cert_path", "key_path"):
            path = getattr(config.webhook, name)
            if not Path(path).is_file():
                problems.append(
                    (f"zastava.webhook.{to_camel(name)}", f"{path} does not exist (`zastava webhook certs`)")
                )
    return problems


def _backend_problems(server: BackendServer) -> list[tuple[str, str]]:
    key = "zastava.backendServer."
    problems: list[tuple[str, str]] = []
    if bool(server.tls_cert_file) != bool(server.tls_key_file):
        why = "tlsCertFile and tlsKeyFile go together (one alone would serve plain HTTP)"
        problems.append((key + "tlsKeyFile", why))
    if server.client_ca_file and not server.tls_cert_file:
        why = "needs tlsCertFile and tlsKeyFile (client certificates need TLS)"
        problems.append((key + "clientCaFile", why))
    for name in ("tls_cert_file", "tls_key_file", "client_ca_file", "policy_file"):
        path = getattr(server, name)
        if path and not Path(path).is_file():
            problems.append((key + to_camel(name), f"{path} is not a readable file"))
    if server.store.startswith("sqlite:"):
        problem = _sqlite_unwritable(server.store.split(":///", 1)[-1])
        if problem:
            problems.append((key + "store", problem))
    return problems


def _sqlite_unwritable(database: str) -> str | None:
    """Why a SQLite database cannot be written here (None: it can). The nearest existing directory must take
    a new file (the database and its WAL files live there; missing directories are created at start-up);
    a relative path is relative to the working directory — ``/`` in the image, a read-only root."""
    import tempfile

    if not database or database == ":memory:":
        return None
    path = Path(database).absolute()
    directory = path.parent
    while not directory.exists() and directory != directory.parent:
        directory = directory.parent
    try:
        with tempfile.TemporaryFile(dir=directory, prefix=".zastava-write-check-"):
            pass
        if path.exists():
            with path.open("r+b"):
                pass
    except OSError as exc:
        reason = exc.strerror or exc
        return f"cannot write the SQLite database {path} ({reason}); give a path on a writable volume"
    return None


def example_config_yaml() -> str:
    """A complete configuration with every key, as in spec §6 (validates with ``load_config``)."""
    data = {"zastava": ZastavaConfig.model_construct().model_dump(by_alias=True, mode="json")}
    data["zastava"]["runtime"]["procfs"] = "/host/proc"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)
