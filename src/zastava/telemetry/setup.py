"""Runtime core start-up shared by every component (the spec's ``AddZastavaRuntimeCore``).

Binds the validated config, installs structured logging with the static scope, the component and the
tenant/environment/deployment scope, emits the authority guardrail warnings of §7, switches tracing on when
``runtime.tracing.otlpEndpoint`` is set, and returns the component's metrics with ``commonTags`` (and the
meter's name and version as ``zastava_meter_info``).
"""

from __future__ import annotations

import gc
import logging
from typing import TextIO

from ..config import ZastavaConfig, authority_guardrail_warnings
from .logging import configure_logging, event
from .metrics import ZastavaMetrics, default_metrics
from .tracing import configure_tracing

__all__ = ["runtime_core", "settle_heap"]

log = logging.getLogger("zastava.runtime")


def runtime_core(
    config: ZastavaConfig,
    component: str,
    *,
    stream: TextIO | None = None,
    level: str | None = None,
    guardrails: bool = True,
) -> ZastavaMetrics:
    """``level`` overrides ``runtime.logging.level`` (a server's ``--log-level``); ``guardrails=False`` for
    components that make no backend calls with the authority client (the backend, the Authority).

    Raises :class:`~zastava.telemetry.tracing.TracingUnavailable` when tracing is configured but the
    exporter is not installed (callers exit 2 naming ``zastava.runtime.tracing.otlpEndpoint``)."""
    runtime = config.runtime
    scope = {**runtime.logging.static_scope, "component": component}
    common = {
        "tenant": runtime.tenant,
        "environment": runtime.environment,
        "deployment": runtime.deployment,
        **runtime.metrics.common_tags,
    }
    configure_logging(
        level or runtime.logging.level,
        fmt=runtime.logging.format,
        static_scope=scope,
        common=common,
        include_scopes=runtime.logging.include_scopes,
        activity_tracking=runtime.logging.include_activity_tracking,
        stream=stream,
    )
    if guardrails:
        for warning in authority_guardrail_warnings(config):
            event(
                log,
                logging.WARNING,
                warning["message"],
                **{k: v for k, v in warning.items() if k != "message"},
            )
    configure_tracing(
        runtime.tracing,
        component=component,
        scope_name=runtime.metrics.meter_name,
        scope_version=runtime.metrics.meter_version,
        attributes={
            "zastava.component": component,
            "zastava.tenant": runtime.tenant,
            "deployment.environment": runtime.environment,
            "zastava.deployment": runtime.deployment,
            **{f"zastava.tag.{k}": v for k, v in runtime.metrics.common_tags.items()},
        },
    )
    metrics = default_metrics(runtime.metrics.common_tags)
    metrics.describe(component, runtime.metrics.meter_name, runtime.metrics.meter_version)
    return metrics


#: Young-generation threshold for servers (CPython's default is 700 allocations).
SERVER_GC_GEN0 = 10_000


def settle_heap(gen0: int = SERVER_GC_GEN0) -> None:
    """Call once a server has imported and built everything, just before it serves.

    Moves the start-up heap (modules, schemas, the app) out of the collector's reach (``gc.freeze``) and lets
    more short-lived objects pile up between young collections: a request that parses and validates 500
    events allocates tens of thousands of containers, and with the defaults the collector kept re-walking
    the whole start-up heap. Measured on the backend's ingest (``bench/run.py backend``, docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0, gen1, gen2)
