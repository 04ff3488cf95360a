"""Validated configuration (spec §6) and the authority guardrails (§7)."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from zastava.config import ConfigError, example_config_yaml, load_config, parse_size

SPEC_YAML = """
zastava:
  mode: {observer: true, webhook: true}
  backend:
    baseAddress: "https://scanner-web.internal"
    policyPath: "/api/v1/scanner/policy/runtime"
    requestTimeoutSeconds: 5
    allowInsecureHttp: false
  runtime:
    authority:
      issuer: "https://authority.internal"
      clientId: "zastava-observer"
      audience: ["scanner","zastava"]
      scopes: ["api:scanner.runtime.write"]
      refreshSkewSeconds: 120
      requireDpop: true
      requireMutualTls: true
      allowStaticTokenFallback: false
      staticTokenPath: null
    tenant: "tenant-01"
    environment: "prod"
    deployment: "cluster-a"
    logging:
      includeScopes: true
      includeActivityTracking: true
      staticScope: {plane: "runtime"}
    metrics:
      meterName: "StellaOps.Zastava"
      meterVersion: "1.0.0"
      commonTags: {cluster: "prod-cluster"}
    engine: "auto"
    procfs: "/host/proc"
    collect:
      entryTrace: true
      loadedLibs: true
      maxLibs: 256
      maxHashBytesPerContainer: 64_000_000
      maxDepth: 48
  admission:
    enforce: true
    failOpenNamespaces: ["dev", "test"]
    verify: {imageSignature: true, sbomReferrer: true, scannerPolicyPass: true}
    cacheTtlSeconds: 300
    resolveTags: true
  limits: {eventsPerSecond: 50, burst: 200, perNodeQueue: 10_000}
  security:
    mounts:
      containerdSock: "/run/containerd/containerd.sock:ro"
      proc: "/proc:/host/proc:ro"
      runtimeState: "/var/lib/containerd:ro"
"""


def zastava(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zastava", *args], input=stdin, capture_output=True, text=True
    )


def test_the_spec_yaml_is_valid_verbatim() -> None:
    config = load_config(text=SPEC_YAML)
    assert config.runtime.collect.max_hash_bytes_per_container == 64_000_000
    assert config.runtime.collect.hash_threads == 2  # not in the spec's YAML: the default
    assert config.limits.per_node_queue == 10_000
    assert config.runtime.metrics.common_tags == {"cluster": "prod-cluster"}
    assert config.admission.fail_open_namespaces == ["dev", "test"]


def test_example_pipes_into_validate() -> None:
    example = zastava("config", "example")
    assert example.returncode == 0
    result = zastava("config", "validate", "-", stdin=example.stdout)
    assert result.returncode == 0, result.stderr


def test_example_round_trips_through_loader() -> None:
    config = load_config(text=example_config_yaml())
    assert config.runtime.procfs == "/host/proc"


@pytest.mark.parametrize(
    ("edit", "path", "message"),
    [
        (("maxLibs: 256", "maxLibs: -3"), "zastava.runtime.collect.maxLibs", "greater than or equal to 1"),
        (
            ("maxDepth: 48", "maxDepth: 48\n      hashThreads: 9"),
            "zastava.runtime.collect.hashThreads",
            "less than or equal to 8",
        ),
        (("    collect:", "    colect:"), "zastava.runtime.colect", "did you mean 'collect'"),
        (("cacheTtlSeconds: 300", "cacheTTL: 300"), "zastava.admission.cacheTTL", "unknown key"),
        (('engine: "auto"', 'engine: "podman"'), "zastava.runtime.engine", "containerd"),
        (
            ("allowInsecureHttp: false", "allowInsecureHttp: nope"),
            "zastava.backend.allowInsecureHttp",
            "boolean",
        ),
        (('proc: "/proc:/host/proc:ro"', 'proc: "/proc:/host/proc"'), "zastava.security.mounts", "read-only"),
    ],
)
def test_invalid_configs_exit_2_naming_the_key_path(
    tmp_path: Path, edit: tuple[str, str], path: str, message: str
) -> None:
    assert edit[0] in SPEC_YAML
    bad = SPEC_YAML.replace(edit[0], edit[1])
    with pytest.raises(ConfigError) as info:
        load_config(text=bad)
    assert any(p.startswith(path) and message in m for p, m in info.value.errors), info.value.errors
    file = tmp_path / "bad.yaml"
    file.write_text(bad)
    result = zastava("config", "validate", str(file))
    assert result.returncode == 2
    assert path in result.stderr and message in result.stderr


def test_several_errors_are_all_reported() -> None:
    bad = SPEC_YAML.replace("maxLibs: 256", "maxLibs: 0").replace("burst: 200", "burst: -1")
    with pytest.raises(ConfigError) as info:
        load_config(text=bad)
    paths = {p for p, _ in info.value.errors}
    assert {"zastava.runtime.collect.maxLibs", "zastava.limits.burst"} <= paths


@pytest.mark.parametrize(
    "text", ["zastava: [1, 2]", "other: {}", "zastava: {mode: {observer: true}}\nextra: 1", ":\n -"]
)
def test_malformed_documents(text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(text=text)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = zastava("config", "validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_environment_overrides_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZASTAVA_RUNTIME__COLLECT__MAXLIBS", "128")
    monkeypatch.setenv("ZASTAVA_RUNTIME__TENANT", "tenant-env")
    monkeypatch.setenv("ZASTAVA_PUBLISHER__BUFFERMAXBYTES", "50MiB")
    monkeypatch.setenv("ZASTAVA_LIMITS__PERNODEQUEUE", "20_000")
    config = load_config(text=SPEC_YAML)
    assert config.runtime.collect.max_libs == 128
    assert config.runtime.tenant == "tenant-env"
    assert config.publisher.buffer_max_bytes == 50 * 1024 * 1024
    assert config.limits.per_node_queue == 20_000


@pytest.mark.parametrize("name", ["ZASTAVA_BACKENDSERVER__STORE", "ZASTAVA_BACKEND_SERVER__STORE"])
def test_environment_merges_into_a_section_the_yaml_has(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The chart passes the PostgreSQL URL this way beside a backendServer section in the ConfigMap: the
    variable replaces the one key, the section's other keys stay (it was silently dropped before)."""
    monkeypatch.setenv(name, "postgresql://zastava@db/zastava")
    text = "zastava:\n  backendServer: {listen: '127.0.0.1:8443', store: 'sqlite:////tmp/x.db'}\n"
    config = load_config(text=text)
    assert config.backend_server.store == "postgresql://zastava@db/zastava"
    assert config.backend_server.listen == "127.0.0.1:8443"


def test_only_prefixed_environment_is_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's unrelated RUNTIME__… or WEBHOOK__… variables change nothing; ZASTAVA_ names outside the
    configuration's sections (ZASTAVA_REQUIRE_REAL) are not configuration either."""
    monkeypatch.setenv("RUNTIME__TENANT", "someone-else")
    monkeypatch.setenv("BACKENDSERVER__STORE", "postgresql://elsewhere/db")
    monkeypatch.setenv("ZASTAVA_REQUIRE_REAL", "1")
    config = load_config(text=SPEC_YAML)
    assert config.runtime.tenant != "someone-else"
    assert config.backend_server.store != "postgresql://elsewhere/db"


def test_unknown_environment_key_in_a_section_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZASTAVA_RUNTIME__TENNANT", "tenant-env")
    with pytest.raises(ConfigError, match=r"zastava\.runtime\.TENNANT: unknown key"):
        load_config(text=SPEC_YAML)


def test_environment_lists_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZASTAVA_RUNTIME__AUTHORITY__SCOPES", '["api:scanner.runtime.write"]')
    assert load_config(text=SPEC_YAML).runtime.authority.scopes == ["api:scanner.runtime.write"]


def test_environment_errors_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZASTAVA_RUNTIME__COLLECT__MAXLIBS", "-1")
    with pytest.raises(ConfigError, match=r"zastava\.runtime\.collect\.maxLibs"):
        load_config(text=SPEC_YAML)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (64_000_000, 64_000_000),
        ("64_000_000", 64_000_000),
        ("64MB", 64_000_000),
        ("50MiB", 52_428_800),
        ("1k", 1000),
        ("2KiB", 2048),
        ("10", 10),
        ("abc", "abc"),
        (True, True),
    ],
)
def test_sizes(value: object, expected: object) -> None:
    assert parse_size(value) == expected


def test_plain_http_backend_needs_opt_in() -> None:
    bad = SPEC_YAML.replace('"https://scanner-web.internal"', '"http://scanner-web.internal"')
    with pytest.raises(ConfigError, match="allowInsecureHttp"):
        load_config(text=bad)
    ok = bad.replace("allowInsecureHttp: false", "allowInsecureHttp: true")
    assert load_config(text=ok).backend.allow_insecure_http


def test_relaxed_guardrails_log_structured_warnings(caplog: pytest.LogCaptureFixture) -> None:
    relaxed = (
        SPEC_YAML.replace("requireDpop: true", "requireDpop: false")
        .replace("requireMutualTls: true", "requireMutualTls: false")
        .replace("allowStaticTokenFallback: false", "allowStaticTokenFallback: true")
        .replace("staticTokenPath: null", "staticTokenPath: /var/run/secrets/token")
    )
    with caplog.at_level(logging.WARNING, logger="zastava.config"):
        load_config(text=relaxed)
    keys = {r.zastava_fields["key"] for r in caplog.records}  # type: ignore[attr-defined]
    assert keys == {
        "zastava.runtime.authority.requireDpop",
        "zastava.runtime.authority.requireMutualTls",
        "zastava.runtime.authority.allowStaticTokenFallback",
    }
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="zastava.config"):
        load_config(text=SPEC_YAML)
    assert caplog.records == []


def test_guardrail_warnings_in_json_logs() -> None:
    from zastava.telemetry.setup import runtime_core

    stream = io.StringIO()
    config = load_config(text=SPEC_YAML.replace("requireDpop: true", "requireDpop: false"), warn=False)
    runtime_core(config, "observer", stream=stream)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["plane"] == "runtime" and line["component"] == "observer" and line["level"] == "warning"
    assert line["key"] == "zastava.runtime.authority.requireDpop" and line["value"] is False
    assert line["tenant"] == "tenant-01" and line["cluster"] == "prod-cluster"
