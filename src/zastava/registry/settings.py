"""From the configuration to the registry objects: client config, credentials, the default signers
(``zastava.registry.trust``), the compiled trust policies (``zastava.admission.trustPolicies``) and the
:class:`~.posture.verifier.ImageVerifier` that admission and the backend share.

Compiling reads key files and trusted roots once; every problem is a :class:`~.errors.TrustConfigError`
whose ``path`` is the configuration key (``zastava config validate`` prints it and exits 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..contracts.canonical import canonical_id
from .errors import InvalidReference, TrustConfigError
from .posture.verifier import ImageVerifier
from .reference import normalise_pattern
from .transport.auth import CredentialStore
from .transport.client import RegistryClient, RegistryClientConfig
from .transport.manifest import Platform
from .verification.keys import PublicKey, load_public_key, load_public_key_file
from .verification.policies import Authority, TrustPolicies, TrustPolicy, compile_glob
from .verification.trust import BUILTIN_ROOT, KeylessIdentity, TrustedSigners, TrustRoot

if TYPE_CHECKING:
    from ..config import Registry, TrustAuthority, ZastavaConfig

__all__ = [
    "client_config",
    "credentials",
    "default_signers",
    "image_verifier",
    "trust_configured",
    "trust_policies",
]

_TRUST = "zastava.registry.trust"
_POLICIES = "zastava.admission.trustPolicies"


def client_config(section: Registry) -> RegistryClientConfig:
    return RegistryClientConfig(
        insecure_registries=tuple(section.insecure_registries),
        concurrency_per_registry=section.concurrency_per_registry,
        connect_timeout_seconds=section.connect_timeout_seconds,
        read_timeout_seconds=section.read_timeout_seconds,
        max_retries=section.max_retries,
        max_retry_after_seconds=section.max_retry_after_seconds,
        max_manifest_bytes=section.max_manifest_bytes,
        max_blob_bytes=section.max_blob_bytes,
        cache_max_bytes=section.cache_max_bytes,
        tag_cache_ttl_seconds=section.tag_cache_ttl_seconds,
        platform=Platform.parse(section.platform),
        digest_policy=section.digest_policy,
        redirect_allowed_internal=tuple(section.redirect_allowed_internal),
    )


def credentials(section: Registry) -> CredentialStore:
    return CredentialStore.from_sources(section.docker_config_path)


class _Roots:
    """Trusted roots loaded once per compilation (several authorities share one)."""

    def __init__(self) -> None:
        self.loaded: dict[str, TrustRoot] = {}

    def get(self, path: str, where: str) -> TrustRoot:
        root = self.loaded.get(path)
        if root is None:
            try:
                root = self.loaded[path] = TrustRoot.load(path)
            except TrustConfigError as exc:
                raise TrustConfigError(str(exc), where) from None
        return root


def default_signers(section: Registry, roots: _Roots | None = None) -> TrustedSigners:
    """``zastava.registry.trust``: what an image no trust policy matches must be signed by."""
    trust = section.trust
    roots = roots or _Roots()
    keys = []
    for i, path in enumerate(trust.public_key_files):
        try:
            keys.append(load_public_key_file(path))
        except TrustConfigError as exc:
            raise TrustConfigError(str(exc), f"{_TRUST}.publicKeyFiles.{i}") from None
    identities = [
        KeylessIdentity(
            issuer=i.issuer, subject=i.subject, issuer_regex=i.issuer_regex, subject_regex=i.subject_regex
        )
        for i in trust.keyless_identities
    ]
    root_path = trust.trusted_root_path
    if root_path is None and (identities or trust.require_tlog_for_keys):
        root_path = BUILTIN_ROOT  # keyless without configuration: the public-good root, offline
    root = roots.get(root_path, f"{_TRUST}.trustedRootPath") if root_path else None
    return TrustedSigners(
        keys=keys,
        identities=identities,
        trusted_root=root,
        require_tlog_for_keys=trust.require_tlog_for_keys,
    )


def _key(authority: TrustAuthority, where: str) -> PublicKey:
    assert authority.key is not None
    try:
        if authority.key.path is not None:
            path = Path(authority.key.path)
            key = load_public_key_file(path)
            return PublicKey(authority.name or path.name, key.key, key.fingerprint)
        assert authority.key.pem is not None
        key = load_public_key(authority.key.pem.encode(), "pem")
    except TrustConfigError as exc:
        field = "path" if authority.key.path is not None else "pem"
        raise TrustConfigError(str(exc), f"{where}.key.{field}") from None
    return PublicKey(authority.name or f"key {key.fingerprint[:19]}", key.key, key.fingerprint)


def _authority(
    authority: TrustAuthority, where: str, section: Registry, roots: _Roots, default_root: str | None
) -> Authority:
    tlog = section.trust.require_tlog_for_keys
    if authority.key is not None:
        key = _key(authority, where)
        root = roots.get(default_root, f"{_TRUST}.trustedRootPath") if default_root else None
        if root is None and tlog:
            root = roots.get(BUILTIN_ROOT, f"{_TRUST}.trustedRootPath")
        return Authority(key.name, TrustedSigners(keys=[key], trusted_root=root, require_tlog_for_keys=tlog))
    keyless = authority.keyless
    assert keyless is not None
    try:
        identity = KeylessIdentity(
            issuer=keyless.issuer,
            issuer_regex=keyless.issuer_reg_exp,
            subject=keyless.subject,
            subject_regex=keyless.subject_reg_exp,
        )
    except TrustConfigError as exc:
        raise TrustConfigError(str(exc), f"{where}.keyless") from None
    if keyless.trusted_root_path is not None:
        root = roots.get(keyless.trusted_root_path, f"{where}.keyless.trustedRootPath")
    else:
        root = roots.get(default_root or BUILTIN_ROOT, f"{_TRUST}.trustedRootPath")
    return Authority(
        authority.name or str(identity), TrustedSigners(identities=[identity], trusted_root=root)
    )


def trust_policies(config: ZastavaConfig) -> TrustPolicies:
    """Compile ``zastava.admission.trustPolicies`` and the default signers; TrustConfigError names the key."""
    roots = _Roots()
    section = config.registry
    default = default_signers(section, roots)
    default_root = section.trust.trusted_root_path
    policies = []
    described = []
    for i, item in enumerate(config.admission.trust_policies):
        where = f"{_POLICIES}.{i}"
        globs = []
        for j, pattern in enumerate(item.images):
            try:
                globs.append(compile_glob(pattern, normalise_pattern(pattern)))
            except (TrustConfigError, InvalidReference) as exc:
                raise TrustConfigError(str(exc), f"{where}.images.{j}") from None
        authorities = [
            _authority(a, f"{where}.authorities.{j}", section, roots, default_root)
            for j, a in enumerate(item.authorities)
        ]
        seen: dict[str, int] = {}
        for j, authority in enumerate(authorities):
            first = seen.setdefault(authority.fingerprint, j)
            if first != j:  # one signer must not count twice towards the threshold
                raise TrustConfigError(
                    f"the same key or identity as authorities.{first} (an authority counts once towards "
                    "threshold; list each signer once)",
                    f"{where}.authorities.{j}",
                )
        names = [a.name for a in authorities]
        if len(set(names)) != len(names):
            raise TrustConfigError(
                "two authorities have the same name (give them distinct `name`s)", f"{where}.authorities"
            )
        try:
            policy = TrustPolicy(
                name=item.name,
                images=tuple(globs),
                authorities=tuple(authorities),
                threshold=item.threshold,
                attestations=tuple(a.predicate_type for a in item.attestations),
                mode=item.mode,
            )
        except TrustConfigError as exc:
            raise TrustConfigError(str(exc), where) from None
        policies.append(policy)
        described.append(
            {
                "name": policy.name,
                "images": [g.normalised for g in policy.images],
                "authorities": [[a.name, a.fingerprint] for a in policy.authorities],
                "threshold": policy.threshold,
                "attestations": list(policy.attestations),
                "mode": policy.mode,
            }
        )
    revision = canonical_id(
        {
            "policies": described,
            "default": default.fingerprint,
            "digestPolicy": section.digest_policy,
            "platform": section.platform,
        }
    )
    return TrustPolicies(tuple(policies), default, revision)


def trust_configured(config: ZastavaConfig) -> bool:
    """Trust policies or default signers are configured (else nothing could ever verify)."""
    trust = config.registry.trust
    return bool(config.admission.trust_policies or trust.public_key_files or trust.keyless_identities)


def image_verifier(config: ZastavaConfig, client: RegistryClient | None = None) -> ImageVerifier:
    """The verifier admission and the backend use: trust policies compiled, a registry client from
    ``zastava.registry`` (unless one is given; the caller closes it), outcomes cached for
    ``admission.cacheTtlSeconds``, failures for ``webhook.failureTtlSeconds``."""
    policies = trust_policies(config)
    client = client or RegistryClient(client_config(config.registry), credentials(config.registry))
    return ImageVerifier(
        client,
        policies,
        digest_policy=config.registry.digest_policy,
        ttl_seconds=config.admission.cache_ttl_seconds,
        failure_ttl_seconds=config.webhook.failure_ttl_seconds,
        max_entries=config.webhook.cache_max_entries,
        timeout_seconds=config.registry.verify_timeout_seconds,
    )
