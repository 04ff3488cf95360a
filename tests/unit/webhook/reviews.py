"""AdmissionReview requests shaped exactly as kube-apiserver sends them to a validating webhook.

Shape from the published ``admission.k8s.io/v1`` reference (AdmissionReview/AdmissionRequest): ``uid``,
``kind``/``resource``/``subResource``, ``requestKind``/``requestResource``/``requestSubResource``, ``name``,
``namespace``, ``operation``, ``userInfo``, ``object``/``oldObject``, ``dryRun`` and ``options``
(``CreateOptions``/``UpdateOptions``/``DeleteOptions``). The Pod is what validating admission sees: defaulted
by the API server (``restartPolicy``, ``dnsPolicy``, ``terminationMessagePath``, ``imagePullPolicy``, …),
mutated by the built-in plugins that run first (ServiceAccount's ``kube-api-access-*`` volume and mounts,
DefaultTolerationSeconds' tolerations) and with ``uid``/``creationTimestamp`` already filled in. Pod YAML was
converted to JSON offline with ``kubectl label --local -f pod.yaml … -o json``.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64

#: ``kubectl label --local -f pod.yaml tier=backend -o json`` of a three-container Pod (one init container).
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "labels": {"app": "api", "env": "prod", "tier": "backend"},
        "name": "api-7c9fbbd8b7-ktd84",
        "namespace": "payments",
    },
    "spec": {
        "containers": [
            {
                "image": f"ghcr.io/acme/api@{DIGEST_A}",
                "name": "api",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
            },
            {"image": "nginx:1.25", "name": "sidecar"},
        ],
        "initContainers": [{"image": "ghcr.io/acme/migrate:1.2.3", "name": "migrate"}],
    },
}


def _pull_policy(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if "@" in image:
        return "IfNotPresent"
    return "Always" if ":" not in last or last.endswith(":latest") else "IfNotPresent"


def defaulted(pod: dict[str, Any], namespace: str, *, token_suffix: str = "x7k2p") -> dict[str, Any]:
    """The Pod as validating admission sees it after defaulting and the built-in mutating plugins."""
    pod = copy.deepcopy(pod)
    meta = pod.setdefault("metadata", {})
    meta["namespace"] = namespace
    meta.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{namespace}/{meta.get('name', '')}")))
    meta.setdefault("creationTimestamp", "2026-11-28T12:00:00Z")
    meta.setdefault(
        "managedFields",
        [
            {
                "manager": "kubectl-client-side-apply",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2026-11-28T12:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {}}, "f:spec": {"f:containers": {}}},
            }
        ],
    )
    spec = pod.setdefault("spec", {})
    volume = f"kube-api-access-{token_suffix}"
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field, []):
            container.setdefault("imagePullPolicy", _pull_policy(container["image"]))
            container.setdefault("resources", {})
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            if field != "ephemeralContainers":
                container.setdefault(
                    "volumeMounts",
                    [
                        {
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "name": volume,
                            "readOnly": True,
                        }
                    ],
                )
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault("priority", 0)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("serviceAccount", "default")
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault(
        "tolerations",
        [
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
            {
                "effect": "NoExecute",
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "tolerationSeconds": 300,
            },
        ],
    )
    spec.setdefault(
        "volumes",
        [
            {
                "name": volume,
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {
                            "configMap": {
                                "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                "name": "kube-root-ca.crt",
                            }
                        },
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                        "path": "namespace",
                                    }
                                ]
                            }
                        },
                    ],
                },
            }
        ],
    )
    pod.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    return pod


def pod_with(images: dict[str, str] | None = None, **spec_lists: list[dict[str, Any]]) -> dict[str, Any]:
    """A Pod with the given ``containers`` (name → image) and other container lists verbatim."""
    pod = copy.deepcopy(POD)
    if images is not None:
        pod["spec"] = {"containers": [{"name": n, "image": i} for n, i in images.items()]}
    pod["spec"].update(spec_lists)
    return pod


_OPTIONS = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


def review(
    pod: dict[str, Any] | None = None,
    *,
    namespace: str = "payments",
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    sub_resource: str | None = None,
    dry_run: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview request dict for a Pod operation."""
    pod = defaulted(pod if pod is not None else POD, namespace)
    gvk = {"group": "", "version": "v1", "kind": "Pod"}
    gvr = {"group": "", "version": "v1", "resource": "pods"}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": pod["metadata"].get("name", ""),
        "namespace": namespace,
        "operation": operation,
        "userInfo": {
            "username": "system:serviceaccount:kube-system:replicaset-controller",
            "uid": "1c2f6a0e-3b8e-4a55-9d36-5c1f0c3a8f21",
            "groups": [
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated",
            ],
        },
        "dryRun": dry_run,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": _OPTIONS[operation], "fieldManager": "kubectl"},
    }
    if sub_resource:
        request["subResource"] = sub_resource
        request["requestSubResource"] = sub_resource
    if operation == "DELETE":
        request["object"] = None
        request["oldObject"] = pod
        request["options"] = {
            "apiVersion": "meta.k8s.io/v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
    else:
        request["object"] = pod
        request["oldObject"] = defaulted(old, namespace) if old is not None else None
        if operation == "CREATE":
            request["options"] = {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def body(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)
