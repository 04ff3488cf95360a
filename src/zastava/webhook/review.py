"""AdmissionReview ``admission.k8s.io/v1`` as the API server sends it, and the response we send back.

The request envelope is validated with pydantic; the Pod (``object``/``oldObject``) stays a plain dict so the
hot path does not validate a whole Pod (images are read defensively by :mod:`.images`). Unknown fields are
ignored: a newer API server may add some. :func:`parse_review` raises :class:`ReviewError` for anything that
is not a well-formed v1 AdmissionReview request; the HTTP layer answers it with a 400.
"""

from __future__ import annotations

import gc
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "RESPONSE_HEAD",
    "AdmissionRequest",
    "AdmissionResponse",
    "AdmissionReview",
    "GroupVersionKind",
    "GroupVersionResource",
    "QuickRequest",
    "ReviewError",
    "Status",
    "UserInfo",
    "load_review",
    "parse_review",
    "quick_request",
    "review_response",
    "validate_review",
]

API_VERSION = "admission.k8s.io/v1"


def _json_object(value: object) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    raise ValueError("must be a JSON object")


#: A JSON object taken as parsed: its type is checked, its content is not walked. Validating the content as
#: ``dict[str, Any]`` walked (and copied) every nested value, which costs as much again as parsing it.
JsonObject = Annotated[dict[str, Any] | None, PlainValidator(_json_object)]


class _K8s(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class GroupVersionKind(_K8s):
    group: str = ""
    version: str
    kind: str


class GroupVersionResource(_K8s):
    group: str = ""
    version: str
    resource: str


class UserInfo(_K8s):
    username: str | None = None
    uid: str | None = None
    groups: list[str] | None = None
    extra: dict[str, list[str]] | None = None


Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]


class AdmissionRequest(_K8s):
    uid: str = Field(min_length=1, max_length=256)
    kind: GroupVersionKind
    resource: GroupVersionResource
    sub_resource: str | None = None
    request_kind: GroupVersionKind | None = None
    request_resource: GroupVersionResource | None = None
    request_sub_resource: str | None = None
    name: str | None = None
    namespace: str | None = None
    operation: Operation
    user_info: UserInfo = Field(default_factory=UserInfo)
    object: JsonObject = None
    old_object: JsonObject = None
    dry_run: bool | None = None
    options: JsonObject = None


class AdmissionReview(_K8s):
    api_version: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


class Status(_K8s):
    """``metav1.Status`` as used in an AdmissionResponse (only the fields the API server reads)."""

    code: int | None = None
    message: str | None = None
    reason: str | None = None


class AdmissionResponse(_K8s):
    uid: str
    allowed: bool
    status: Status | None = None
    warnings: list[str] | None = None
    audit_annotations: dict[str, str] | None = None
    #: base64 of a JSONPatch (RFC 6902) document, mutating webhooks only (``/mutate``: digest pinning)
    patch: str | None = None
    patch_type: Literal["JSONPatch"] | None = None


class ReviewError(ValueError):
    """The body is not a well-formed ``admission.k8s.io/v1`` AdmissionReview request (HTTP 400)."""


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<body>"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _loads(body: bytes | str) -> Any:
    """``orjson.loads`` with the cyclic collector paused: parsed JSON holds no cycles, and a body of many
    small arrays or objects otherwise triggers collection after collection while it is built (6 MB of two
    million empty lists: 1.1 s with the collector, 0.25 s without)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(body)
    finally:
        if paused:
            gc.enable()


def load_review(body: bytes | str) -> Any:
    """The body parsed as JSON; :class:`ReviewError` when it is not JSON."""
    try:
        return _loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReviewError(f"body is not valid JSON: {exc}") from None


def validate_review(data: Any) -> AdmissionReview:
    """A parsed body validated as an AdmissionReview request; :class:`ReviewError` names what is wrong."""
    if not isinstance(data, dict):
        raise ReviewError("body must be a JSON object (an AdmissionReview)")
    if data.get("apiVersion") != API_VERSION or data.get("kind") != "AdmissionReview":
        raise ReviewError(
            f"expected apiVersion {API_VERSION!r} and kind 'AdmissionReview', got "
            f"{data.get('apiVersion')!r}/{data.get('kind')!r} (configure admissionReviewVersions: [v1])"
        )
    try:
        return AdmissionReview.model_validate(data)
    except ValidationError as exc:
        raise ReviewError(f"malformed AdmissionReview: {_describe(exc)}") from None


def parse_review(body: bytes | str) -> AdmissionReview:
    """Parse and validate a request body; :class:`ReviewError` names what is wrong."""
    return validate_review(load_review(body))


class QuickRequest(NamedTuple):
    """What the warm path reads of a Pod CREATE review that :func:`quick_request` accepted."""

    uid: str
    namespace: str
    name: str | None
    dry_run: bool
    pod: dict[str, Any]


_REQUEST_KEYS = frozenset(
    {
        "uid",
        "kind",
        "resource",
        "subResource",
        "requestKind",
        "requestResource",
        "requestSubResource",
        "name",
        "namespace",
        "operation",
        "userInfo",
        "object",
        "oldObject",
        "dryRun",
        "options",
    }
)
_GVK_KEYS = frozenset({"group", "version", "kind"})
_GVR_KEYS = frozenset({"group", "version", "resource"})
_USER_KEYS = frozenset({"username", "uid", "groups", "extra"})


def _str_or_none(value: object) -> bool:
    return value is None or type(value) is str


def _gv(value: object, keys: frozenset[str], last: str) -> bool:
    """A GroupVersionKind/Resource pydantic accepts: camelCase keys only, the values exact strings."""
    return (
        type(value) is dict
        and value.keys() <= keys
        and type(value.get("group", "")) is str
        and type(value.get("version")) is str
        and type(value.get(last)) is str
    )


def _pod_kind(kind: object) -> bool:
    return _gv(kind, _GVK_KEYS, "kind") and kind["kind"] == "Pod"  # type: ignore[index]


def _pods(resource: Any) -> bool:
    return (
        _gv(resource, _GVR_KEYS, "resource")
        and resource.get("group", "") == ""
        and resource["version"] == "v1"
        and resource["resource"] == "pods"
    )


def _user_info(value: object) -> bool:
    if type(value) is not dict or not value.keys() <= _USER_KEYS:
        return False
    groups = value.get("groups")
    extra = value.get("extra")
    return (
        _str_or_none(value.get("username"))
        and _str_or_none(value.get("uid"))
        and (groups is None or (type(groups) is list and all(type(g) is str for g in groups)))
        and (
            extra is None
            or (
                type(extra) is dict
                and all(type(v) is list and all(type(x) is str for x in v) for v in extra.values())
            )
        )
    )


def quick_request(data: Any) -> QuickRequest | None:
    """The warm path's reading of a parsed body, without the pydantic envelope (~8 µs a review): only a
    Pod ``CREATE`` review whose every field is of the exact JSON type :class:`AdmissionReview` accepts
    unchanged — camelCase keys only (the model also takes snake_case names), no unknown key, exact ``str``/
    ``bool``/``dict``/``list`` types. Anything else is None and goes through :func:`validate_review`, so a
    review accepted here is one the model accepts with the same values (``tests/unit/webhook/test_warm.py``
    checks both readings against each other)."""
    if type(data) is not dict or not data.keys() <= _TOP_KEYS:
        return None
    if data.get("apiVersion") != API_VERSION or data.get("kind") != "AdmissionReview":
        return None
    request = data.get("request")
    if type(request) is not dict or not request.keys() <= _REQUEST_KEYS:
        return None
    uid = request.get("uid")
    kind: Any = request.get("kind")
    resource: Any = request.get("resource")
    pod = request.get("object")
    dry_run = request.get("dryRun")
    namespace = request.get("namespace")
    name = request.get("name")
    if (
        type(uid) is not str
        or not 0 < len(uid) <= 256
        or request.get("operation") != "CREATE"
        or (kind != _accepted.get("kind") and not _accept("kind", _pod_kind(kind), kind))
        or (resource != _accepted.get("resource") and not _accept("resource", _pods(resource), resource))
        or request.get("subResource") not in (None, "")
        or type(pod) is not dict
        or not _str_or_none(namespace)
        or not _str_or_none(name)
        or not (dry_run is None or type(dry_run) is bool)
        or not _str_or_none(request.get("requestSubResource"))
        or type(request.get("oldObject", {})) not in (dict, type(None))
        or type(request.get("options", {})) not in (dict, type(None))
    ):
        return None
    for key, keys, last in (("requestKind", _GVK_KEYS, "kind"), ("requestResource", _GVR_KEYS, "resource")):
        value = request.get(key)
        if value is None or value == _accepted.get(key):
            continue
        if not _accept(key, _gv(value, keys, last), value):
            return None
    if "userInfo" in request:
        user = request["userInfo"]
        if user != _accepted.get("userInfo") and not _accept("userInfo", _user_info(user), user):
            return None
    return QuickRequest(uid, namespace or "", name, bool(dry_run), pod)


#: The last value of each of these fields that passed its check: the API server repeats them review after
#: review (the same controller creates every replica), and comparing with ``==`` costs less than checking
#: again. Equal to an accepted value is accepted: a value of parsed JSON equals a str/list/dict/None
#: structure only when it has the same types (``True == 1`` cannot arise: no bool is accepted here).
_accepted: dict[str, object] = {}


def _accept(key: str, ok: bool, value: object) -> bool:
    if ok:
        _accepted[key] = value
    return ok


_TOP_KEYS = frozenset({"apiVersion", "kind", "request"})

#: every response body starts so, then the uid's JSON string (:func:`review_response`: ``uid`` comes first)
RESPONSE_HEAD = b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":'


def review_response(response: AdmissionResponse) -> bytes:
    """The response body: an AdmissionReview with only ``response`` set."""
    return orjson.dumps(
        {
            "apiVersion": API_VERSION,
            "kind": "AdmissionReview",
            "response": response.model_dump(by_alias=True, exclude_none=True),
        }
    )
