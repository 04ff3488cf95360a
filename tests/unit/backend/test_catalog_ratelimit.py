"""CycloneDX reading, digests, the usage index, and the token-bucket rate caps."""

from __future__ import annotations

import pytest

from zastava.backend.catalog import CatalogIndex, SbomError, image_digest, parse_sbom
from zastava.backend.ratelimit import RateLimiter

D = "sha256:" + "0f" * 32


def test_image_digest() -> None:
    assert image_digest(D) == D
    assert image_digest(f"ghcr.io/a/b@{D}") == D
    assert image_digest("ghcr.io/a/b:1") is None
    assert image_digest(f"ghcr.io/a/b@{D.upper()}") is None
    assert image_digest(None) is None


def test_parse_sbom_paths_hashes_nesting_and_severity() -> None:
    doc = {
        "bomFormat": "CycloneDX",
        "components": [
            {
                "bom-ref": "a",
                "name": "a",
                "properties": [
                    {"name": "syft:location:0:path", "value": "/usr/lib/liba.so"},
                    {"name": "aquasecurity:trivy:FilePath", "value": "usr/lib/liba.so.1"},
                    {"name": "other", "value": "/not/a/path"},
                ],
                "hashes": [{"alg": "SHA-256", "content": "AA" * 32}, {"alg": "MD5", "content": "x"}],
                "components": [{"name": "nested", "purl": "pkg:generic/nested@1"}],
            },
            {"bom-ref": "a", "name": "dup"},
        ],
        "vulnerabilities": [
            {
                "id": "CVE-1",
                "ratings": [{"severity": "low"}, {"severity": "critical"}],
                "affects": [{"ref": "a"}],
            },
            {"id": "CVE-2"},
        ],
    }
    comps, vulns = parse_sbom(doc)
    by_name = {c.name: c for c in comps}
    assert by_name["a"].paths == ["/usr/lib/liba.so", "/usr/lib/liba.so.1"]
    assert by_name["a"].sha256 == ["aa" * 32]
    assert by_name["nested"].bom_ref == "pkg:generic/nested@1"
    assert by_name["dup"].bom_ref == "a#2"  # refs stay unique
    assert [(v.id, v.severity, v.affects) for v in vulns] == [
        ("CVE-1", "critical", ["a"]),
        ("CVE-2", "unknown", []),
    ]


@pytest.mark.parametrize(
    "doc",
    [
        {"bomFormat": "SPDX"},
        {"bomFormat": "CycloneDX", "components": [{"version": "1"}]},
        {"bomFormat": "CycloneDX", "vulnerabilities": {"id": "x"}},
        {"bomFormat": "CycloneDX", "components": [{"name": "x", "bom-ref": "r" * 2000}]},
    ],
)
def test_bad_sboms(doc: dict[str, object]) -> None:
    with pytest.raises(SbomError):
        parse_sbom(doc)


def test_deep_nesting_is_bounded() -> None:
    def nested(levels: int) -> dict[str, object]:
        doc: dict[str, object] = {"name": "leaf"}
        for i in range(levels):
            doc = {"name": f"n{i}", "components": [doc]}
        return {"bomFormat": "CycloneDX", "components": [doc]}

    comps, _ = parse_sbom(nested(32))
    assert len(comps) == 33
    with pytest.raises(SbomError, match="nested deeper than 32"):
        parse_sbom(nested(200))


def test_index_matches_usr_merge_and_prefers_hash() -> None:
    index = CatalogIndex.of(
        [
            {"bomRef": "libc", "paths": ["/lib/x86_64-linux-gnu/libc.so.6"], "sha256": []},
            {"bomRef": "z", "paths": [], "sha256": ["ab" * 32]},
        ]
    )
    assert index.match("/usr/lib/x86_64-linux-gnu/libc.so.6", None) == ("libc", "path")
    assert index.match("/lib/x86_64-linux-gnu/libc.so.6", "ab" * 32) == ("z", "sha256")
    assert index.match("/opt/other.so", None) is None


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_token_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter((100, 100), (10, 20), clock=clock)
    assert limiter.acquire("t", {"a": 20}) is None
    wait = limiter.acquire("t", {"a": 1})
    assert wait == pytest.approx(0.1)
    assert RateLimiter.retry_after(wait) == "1"
    assert limiter.acquire("t", {"b": 5}) is None  # other node unaffected
    clock.t = 0.1
    assert limiter.acquire("t", {"a": 1}) is None
    # a batch larger than the burst passes when the bucket is full, then pays its debt
    assert limiter.acquire("t", {"c": 50}) is None
    assert limiter.acquire("t", {"c": 1}) == pytest.approx((1 + 30) / 10)
    # refusals take nothing from the tenant bucket either
    assert limiter.acquire("u", {"x": 20}) is None
    assert limiter.acquire("u", {"x": 20, "y": 20}) is not None
    assert limiter.acquire("u", {"y": 20}) is None


def test_bucket_keys_are_bounded() -> None:
    limiter = RateLimiter((1e9, 1e9), (1, 1), max_keys=10)
    for i in range(100):
        limiter.acquire("t", {f"n{i}": 1})
    assert len(limiter._buckets) <= 10
