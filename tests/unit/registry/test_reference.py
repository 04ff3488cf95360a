"""The one image-reference model (``zastava.registry.reference``): normalisation rules, patterns, matching.

The same rules through the product's entry points (webhook ASGI app, ``zastava webhook review``, backend
``/policy/runtime``, ``zastava config validate``) are in tests/unit/webhook/test_references.py,
tests/integration/backend and tests/unit/test_config_patterns.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zastava.registry.errors import InvalidReference
from zastava.registry.reference import (
    canonical_host,
    name_matches,
    normalise_pattern,
    normalise_tag,
    parse_reference,
)

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("acme/api:v1", "docker.io", "acme/api", "v1", None),
        ("docker.io/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("index.docker.io/library/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("registry-1.docker.io/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("docker.io:443/library/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("DOCKER.IO/nginx", "docker.io", "library/nginx", "latest", None),
        ("ghcr.io/acme/api:1.2.3", "ghcr.io", "acme/api", "1.2.3", None),
        (f"ghcr.io/acme/api@{D}", "ghcr.io", "acme/api", None, D),
        (f"ghcr.io/acme/api:1@{D}", "ghcr.io", "acme/api", "1", D),
        ("localhost/x", "localhost", "x", "latest", None),
        ("127.0.0.1:5000/team/x:9", "127.0.0.1:5000", "team/x", "9", None),
        ("Registry.Example.COM:443/a/b", "registry.example.com", "a/b", "latest", None),
        ("evil.io:80/x:1", "evil.io:80", "x", "1", None),
        ("[::1]:5000/a:b", "[::1]:5000", "a", "b", None),
        ("[::1]:443/a:b", "[::1]", "a", "b", None),
        ("docker.io:5000/nginx:1", "docker.io:5000", "nginx", "1", None),
    ],
)
def test_normalisation(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert ref.name == f"{registry}/{repository}"
    assert ref.pinned == (f"{registry}/{repository}@{digest}" if digest else None)
    assert ref.implicit_tag == (":" not in text.rsplit("/", 1)[-1] and "@" not in text)


def test_implicit_latest_is_the_same_image_as_explicit_latest() -> None:
    assert parse_reference("nginx") == parse_reference("docker.io/library/nginx:latest")
    assert parse_reference("nginx").implicit_tag and not parse_reference("nginx:latest").implicit_tag


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "non-empty"),
        (" nginx", "whitespace"),
        ("nginx\t", "whitespace"),
        ("UPPER/case", "lowercase"),
        ("ghcr.io/Acme/api", "must be lowercase"),
        ("a:b:c", "invalid repository"),
        ("nginx@sha256:short", "invalid digest"),
        (f"nginx@sha256:{'AB' * 32}", "invalid digest"),
        ("x@", "invalid digest"),
        ("a//b", "empty component"),
        ("ghcr.io/acme/", "empty component"),
        ("/x", "empty component"),
        ("-a/b", "invalid repository"),
        ("a/b:" + "t" * 200, "invalid tag"),
        ("ghcr.io:0443/a", "no leading zeros"),
        ("ghcr.io:70000/a", "1-65535"),
        ("ghcr.io:/a", "port"),
        ("evil.io./x", "invalid registry host"),
        ("[::1/x", "invalid registry host"),
    ],
)
def test_odd_spellings_are_errors_naming_the_problem(text: str, error: str) -> None:
    with pytest.raises(InvalidReference, match=r"invalid image reference|non-empty") as info:
        parse_reference(text)
    assert error in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("pattern", "normalised"),
    [
        ("evil.io", "evil.io"),
        ("EVIL.io:443", "evil.io"),
        ("localhost:5000", "localhost:5000"),
        ("localhost", "localhost"),
        ("index.docker.io", "docker.io"),
        ("docker.io/nginx", "docker.io/library/nginx"),
        ("registry-1.docker.io:443/library/nginx", "docker.io/library/nginx"),
        ("nginx", "docker.io/library/nginx"),
        ("acme/api", "docker.io/acme/api"),
        ("Ghcr.IO/acme/*", "ghcr.io/acme/*"),
        ("index.docker.io/library/ngin*", "docker.io/library/ngin*"),
        ("*.evil.io", "*.evil.io"),
    ],
)
def test_patterns_normalised_like_names(pattern: str, normalised: str) -> None:
    assert normalise_pattern(pattern) == normalised


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("ghcr.io/acme/", "empty component"),
        ("ghcr.io//acme", "empty component"),
        ("ghcr.io/Acme", "lowercase"),
        ("ghcr.io/acme/api:1", "tag"),
        (f"ghcr.io/acme/api@{D}", "digest"),
        ("ghcr.io/ACME/*", "lowercase"),
        (" evil.io", "whitespace"),
        ("evil.io:0443", "leading zeros"),
        ("", "non-empty"),
    ],
)
def test_odd_patterns_are_errors(pattern: str, error: str) -> None:
    with pytest.raises(InvalidReference) as info:
        normalise_pattern(pattern)
    assert error in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("image", "pattern", "any_port", "matches"),
    [
        ("ghcr.io/acme/api", "ghcr.io", False, True),
        ("ghcr.io/acme/api", "ghcr.io/acme", False, True),
        ("ghcr.io/acme/api", "ghcr.io/ac", False, False),
        ("ghcr.io/acmeevil/api", "ghcr.io/acme", False, False),
        ("ghcr.io/acme/api", "ghcr.io/*/api", False, True),
        ("nginx", "docker.io/library/*", False, True),
        ("ghcr.io:5000/acme/api", "ghcr.io", False, False),
        ("ghcr.io:5000/acme/api", "ghcr.io", True, True),
        ("ghcr.io:5000/acme/api", "ghcr.io:6000", True, False),
        ("docker.io:5000/nginx", "docker.io/library/nginx", True, True),
        ("[::1]:5000/a", "[::1]", True, True),
        ("[::1]:5000/a", "[::1]:5000/*", False, True),
        ("[::1]:5000/a", "[::1]:6000/*", False, False),
        ("evil.io.example/x", "evil.io", True, False),
    ],
)
def test_name_matches(image: str, pattern: str, any_port: bool, matches: bool) -> None:
    assert name_matches(parse_reference(image), normalise_pattern(pattern), any_port=any_port) is matches


def test_tags_for_bans() -> None:
    assert normalise_tag("LATEST") == "latest"
    with pytest.raises(InvalidReference):
        normalise_tag("la test")


def test_canonical_host() -> None:
    assert canonical_host("Registry-1.Docker.IO:443") == "docker.io"
    assert canonical_host("[FE80::1]:443") == "[fe80::1]"
    with pytest.raises(InvalidReference):
        canonical_host("a:b:c")


@given(st.text(max_size=300))
def test_parse_is_idempotent(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref and str(parse_reference(str(ref))) == str(ref)


@given(st.text(max_size=120))
def test_pattern_normalisation_is_idempotent(text: str) -> None:
    try:
        pattern = normalise_pattern(text)
    except InvalidReference:
        return
    assert normalise_pattern(pattern) == pattern


def test_the_reference_model_is_a_light_import() -> None:
    """``zastava.config`` normalises patterns with it: importing it must not load the registry client and the
    cryptography stack into every process that reads the configuration (the observer agent)."""
    code = (
        "import sys, zastava.config, zastava.registry.reference;"
        "heavy = [m for m in ('httpx', 'cryptography', 'zastava.registry.client') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout
