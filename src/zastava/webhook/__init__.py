"""The Kubernetes validating admission webhook (spec §4).

Modules, one concept each: :mod:`.review` (AdmissionReview ``admission.k8s.io/v1`` models), :mod:`.images`
(image references and collection from a Pod), :mod:`.resolve` (tag → digest protocol), :mod:`.gates` (policy
gates), :mod:`.cache` (per-digest single-flight result cache), :mod:`.deadline`, :mod:`.backend` (the
``/policy/runtime`` and decision-record client), :mod:`.admitter` (the decision), :mod:`.app` (ASGI),
:mod:`.tls` (certificate hot reload), :mod:`.certs` (self-signed CA + serving certificate), :mod:`.server`
and :mod:`.cli`. Nothing here imports the observer or backend planes.
"""
