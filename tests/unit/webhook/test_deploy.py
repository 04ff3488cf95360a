"""deploy/webhook: schema-valid (kubernetes-validate, strict) and consistent with the webhook's behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from zastava.config import ZastavaConfig

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "webhook"


def documents() -> list[dict[str, Any]]:
    return [d for f in sorted(DEPLOY.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


@pytest.mark.parametrize("document", documents(), ids=lambda d: d["kind"])
def test_schema_valid(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, "1.30.0", strict=True)


def test_webhook_configuration() -> None:
    (vwc,) = [d for d in documents() if d["kind"] == "ValidatingWebhookConfiguration"]
    hooks = {h["failurePolicy"]: h for h in vwc["webhooks"]}
    assert set(hooks) == {"Fail", "Ignore"}
    fail_open = ZastavaConfig().admission.fail_open_namespaces
    for hook in vwc["webhooks"]:
        assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
        (rule,) = hook["rules"]
        assert rule["operations"] == ["CREATE", "UPDATE"] and rule["apiGroups"] == [""]
        assert set(rule["resources"]) == {"pods", "pods/ephemeralcontainers"}
        assert hook["clientConfig"]["service"]["path"] == "/admit"
        namespace = hook["clientConfig"]["service"]["namespace"]
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name"
        if hook["failurePolicy"] == "Fail":
            assert expression["operator"] == "NotIn"
            assert namespace in expression["values"], "the webhook's own namespace must be exempt"
            assert set(fail_open) <= set(expression["values"])
        else:
            assert expression["operator"] == "In" and expression["values"] == fail_open
