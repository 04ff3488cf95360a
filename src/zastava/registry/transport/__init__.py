"""Transport: talking to OCI registries — references, credentials, the distribution client, manifests, and
referrers (OCI 1.1 API with the tag-schema fallback). Nothing here verifies a signature."""
