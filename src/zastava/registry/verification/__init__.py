"""Verification: keys, DSSE, transparency evidence, trusted roots, sigstore bundles, cosign's layouts, and
trust policies. Pure: every function takes material that was already fetched (like sigstore-python's
``Verifier``) and never talks to a registry; :mod:`zastava.registry.posture` fetches, then calls these."""
