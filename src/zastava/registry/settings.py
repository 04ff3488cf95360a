"""From the ``zastava.registry`` configuration section to client config, credentials and trust policy."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .auth import CredentialStore
from .client import Platform, RegistryClientConfig
from .trust import KeylessIdentity, TrustPolicy

if TYPE_CHECKING:
    from ..config import Registry

__all__ = ["client_config", "credentials", "trust_policy"]


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
    )


def credentials(section: Registry) -> CredentialStore:
    return CredentialStore.from_sources(section.docker_config_path)


def trust_policy(section: Registry) -> TrustPolicy:
    trust = section.trust
    return TrustPolicy.from_files(
        trust.public_key_files,
        [
            KeylessIdentity(
                issuer=i.issuer, subject=i.subject, issuer_regex=i.issuer_regex, subject_regex=i.subject_regex
            )
            for i in trust.keyless_identities
        ],
        trust.trusted_root_path,
        require_tlog_for_keys=trust.require_tlog_for_keys,
        digest_policy=section.digest_policy,
    )
