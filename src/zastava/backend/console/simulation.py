"""The backend's side of the policy simulation: gather the tenant's inputs, answer the gates' policy questions
in-process, and hand both to :func:`zastava.webhook.simulation.simulate` — the webhook's own Admitter.

This module is the one place where the reference backend imports the webhook plane, and only when a
simulation runs (the import is inside :meth:`SimulationService.run`): "no second implementation of the
gates" (issue 18) means the backend must execute the webhook's code, not a copy of it.

Inputs: running containers grouped into Pods (Kubernetes) or one Pod per container (Docker hosts), with the
image as the workload names it, its namespace and labels; and the decision records of the last ``days``
(each with what the gates read). Both are bounded (``simulationMaxWorkloads``, ``simulationMaxRequests``,
newest first) and the report says when a bound was hit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from ...config import ConfigError, ZastavaConfig, load_config
from ...contracts import RuntimePolicyRequest, RuntimePolicyResponse
from . import queries

if TYPE_CHECKING:
    from ...webhook.simulation import ReplayInput
    from ..app import BackendService

__all__ = ["SimulationError", "SimulationRequest", "SimulationService", "workload_inputs"]

MAX_CONFIG_BYTES = 1_000_000


class SimulationError(Exception):
    """A simulation that cannot run: ``status`` 400 (bad candidate), 429 (busy) or 504 (took too long)."""

    def __init__(self, status: int, message: str, errors: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors or []


@dataclass(frozen=True)
class SimulationRequest:
    config: str
    baseline: str | None = None
    days: int = 7
    workloads: bool = True
    requests: bool = True


def parse_candidate(text: str, what: str = "config") -> ZastavaConfig:
    if len(text.encode("utf-8", errors="replace")) > MAX_CONFIG_BYTES:
        raise SimulationError(400, f"{what} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        return load_config(text=text, warn=False)
    except ConfigError as exc:
        raise SimulationError(400, f"{what} is not a valid configuration: {exc}", exc.errors) from None


def workload_inputs(rows: list[dict[str, Any]]) -> tuple[list[ReplayInput], dict[str, str]]:
    """Running containers → one replay input per Pod, and image → digest as observed (for tags)."""
    from ...webhook.simulation import ReplayInput

    pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row["platform"] == "kubernetes" and row["pod"]:
            key = (row["namespace"] or "", row["pod"])
        else:  # a Docker host: every container is its own workload
            key = (row["namespace"] or "", row["container"] or row["container_id"])
        pods.setdefault(key, []).append(row)
    known: dict[str, str] = {}
    out: list[ReplayInput] = []
    for (namespace, pod), members in pods.items():
        containers = []
        for index, row in enumerate(members):
            image = row.get("image_name") or row["image"]
            if not image:
                continue
            if row["image_digest"] and "@" not in image:
                known.setdefault(image, row["image_digest"])
            containers.append(("containers", row["container"] or f"container-{index}", image))
        if not containers:
            continue
        first = members[0]
        out.append(
            ReplayInput(
                kind="workload",
                key=f"{namespace}/{first['workload'] or pod}",
                namespace=namespace,
                pod=pod,
                labels=first["labels"] or {},
                containers=tuple(containers),
                recorded="running",
                detail={
                    "workload": first["workload"],
                    "nodes": sorted({m["node"] for m in members}),
                    "containerIds": [m["container_id"] for m in members],
                },
            )
        )
    return out, known


class SimulationService:
    def __init__(self, service: BackendService) -> None:
        self.service = service
        self.settings = service.settings.console
        self._running = asyncio.Semaphore(self.settings.simulation_concurrency)

    async def run(self, tenant: str, request: SimulationRequest) -> dict[str, Any]:
        from ...webhook.simulation import (
            KnownDigests,
            inputs_from_records,
            known_digests_from_records,
            simulate,
        )

        settings = self.settings
        if not 1 <= request.days <= settings.simulation_max_days:
            raise SimulationError(400, f"days must be from 1 to {settings.simulation_max_days}")
        candidate = parse_candidate(request.config)
        baseline = parse_candidate(request.baseline, "baseline") if request.baseline else None
        if self._running.locked():
            raise SimulationError(429, "another simulation is running; retry in a moment")
        async with self._running:
            started = time.perf_counter()
            now_us = self.service.now_us()
            since_us = now_us - request.days * 86_400_000_000

            def gather() -> tuple[list[dict[str, Any]], bool, list[dict[str, Any]], bool]:
                rows, rows_cut = (
                    queries.running_workloads(self.service.store, tenant, settings.simulation_max_workloads)
                    if request.workloads
                    else ([], False)
                )
                records, records_cut = (
                    queries.recent_decisions(
                        self.service.store, tenant, since_us, settings.simulation_max_requests
                    )
                    if request.requests
                    else ([], False)
                )
                return rows, rows_cut, records, records_cut

            rows, rows_cut, records, records_cut = await anyio.to_thread.run_sync(gather)
            workloads, observed = workload_inputs(rows)
            replayed = inputs_from_records(records)
            known = {**known_digests_from_records(records), **observed}

            async def policy(
                req: RuntimePolicyRequest, *, time_budget: float | None = None
            ) -> RuntimePolicyResponse:
                return await self.service.policy_answer(tenant, req)

            from ...registry.errors import TrustConfigError
            from ...registry.settings import image_verifier

            owned: list[Any] = []  # registry clients made here, closed at the end
            shared = self.service.verifier.client if self.service.verifier is not None else None

            def verifier_for(config: ZastavaConfig) -> Any:
                """A configuration with trust policies verifies locally, as the webhook would: over the
                backend's registry client when it has one (its credentials), else one from the config."""
                if not config.admission.trust_policies:
                    return None
                try:
                    verifier = image_verifier(config, shared)
                except TrustConfigError as exc:
                    where = exc.path or "zastava.admission.trustPolicies"
                    raise SimulationError(400, f"{where}: {exc}") from None
                if shared is None:
                    owned.append(verifier.client)
                return verifier

            try:
                async with asyncio.timeout(settings.simulation_timeout_seconds):
                    report = await simulate(
                        candidate,
                        [*workloads, *replayed],
                        policy=policy,
                        resolver=KnownDigests(known),
                        baseline=baseline,
                        truncated={"workloads": rows_cut, "requests": records_cut},
                        verifier_for=verifier_for,
                    )
            except TimeoutError:
                raise SimulationError(
                    504, f"the simulation took longer than {settings.simulation_timeout_seconds:g} s"
                ) from None
            finally:
                for client in owned:
                    await client.close()
            out = report.wire()
            out["days"] = request.days
            out["elapsedMs"] = round((time.perf_counter() - started) * 1000, 1)
            out["inputs"] = {"workloads": len(workloads), "requests": len(replayed)}
            return out


def request_from_json(data: Mapping[str, Any]) -> SimulationRequest:
    config = data.get("config")
    if not isinstance(config, str) or not config.strip():
        raise SimulationError(400, "config must be the candidate configuration (YAML text)")
    baseline = data.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise SimulationError(400, "baseline must be YAML text when given")
    days = data.get("days", 7)
    if isinstance(days, bool) or not isinstance(days, int):
        raise SimulationError(400, "days must be an integer")
    include = data.get("include", ["workloads", "requests"])
    if not isinstance(include, list) or not set(include) <= {"workloads", "requests"} or not include:
        raise SimulationError(400, "include must be a non-empty list of 'workloads' and 'requests'")
    return SimulationRequest(
        config=config,
        baseline=baseline or None,
        days=days,
        workloads="workloads" in include,
        requests="requests" in include,
    )
