"""``zastava console login`` (a one-time link into the web console) and ``zastava policy simulate``.

Both are clients of the backend and authenticate like the agents: ``--config`` names the YAML whose
``zastava.runtime.authority`` holds the Authority client (OpTok, DPoP, client certificate) and whose
``zastava.backend.baseAddress`` is the backend (``--backend`` overrides it). For ``policy simulate`` that file
is also the candidate: its ``zastava.admission`` section is what gets simulated; ``--credentials`` takes the
client from another file when the candidate is, say, the webhook's own configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ...terminal import err, fail, write_json

if TYPE_CHECKING:
    from ...config import ZastavaConfig

__all__ = ["console_app", "policy_app"]

console_app = typer.Typer(help="The backend's web console.", no_args_is_help=True)
policy_app = typer.Typer(help="Admission policy: simulate a candidate configuration.", no_args_is_help=True)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="zastava YAML: Authority credentials, backend address.")
]
BackendOption = Annotated[
    str | None, typer.Option("--backend", help="Backend base URL (default: zastava.backend.baseAddress).")
]


def _load(path: Path) -> ZastavaConfig:
    from ...config import ConfigError, load_config

    try:
        return load_config(path, warn=False)
    except ConfigError as exc:
        for key, message in exc.errors:
            err.print(f"{key}: {message}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _base(config: ZastavaConfig, backend: str | None) -> str:
    url = backend or config.backend.base_address
    if not url.startswith(("http://", "https://")):
        fail(f"--backend must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


async def _post(config: ZastavaConfig, url: str, body: bytes, wait_seconds: float) -> tuple[int, Any]:
    import httpx
    import orjson

    from ...auth import backend_auth

    auth = backend_auth(config, component="operator-cli")
    try:
        headers = {"content-type": "application/json"}
        if auth.headers_provider is not None:
            headers.update(await auth.headers_provider("POST", url))
        try:
            response = await auth.http_client.post(url, content=body, headers=headers, timeout=wait_seconds)
        except httpx.HTTPError as exc:
            fail(f"cannot reach the backend at {url}: {type(exc).__name__}: {exc}", 1)
        if auth.provider is not None and auth.provider.observe_response(response):
            headers.update(await auth.headers_provider("POST", url) if auth.headers_provider else {})
            response = await auth.http_client.post(url, content=body, headers=headers, timeout=wait_seconds)
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            data = {"error": response.text[:2000]}
        return response.status_code, data
    finally:
        await auth.aclose()


@console_app.command("login")
def login(
    config: ConfigOption,
    backend: BackendOption = None,
    open_browser: Annotated[bool, typer.Option("--open", help="Open the link in a browser.")] = False,
) -> None:
    """Print a one-time link that logs this operator into the console (valid a few minutes, once).

    The link is a credential: open it yourself, do not share it."""
    import asyncio

    cfg = _load(config)
    url = f"{_base(cfg, backend)}/api/v1/scanner/console/login-links"
    status, data = asyncio.run(_post(cfg, url, b"{}", cfg.backend.request_timeout_seconds))
    if status != 200:
        fail(f"backend refused the login link ({status}): {data.get('error', data)}", 1)
    typer.echo(data["url"])
    err.print(
        f"tenant {data['tenant']}, subject {data['subject']}, expires {data['expiresAt']}", highlight=False
    )
    if open_browser:
        import webbrowser

        webbrowser.open(data["url"])


@policy_app.command("simulate")
def simulate(
    config: Annotated[
        Path,
        typer.Option("--config", "-c", help="Candidate configuration (its zastava.admission is simulated)."),
    ],
    backend: BackendOption = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Compare with this configuration instead of what was recorded."),
    ] = None,
    credentials: Annotated[
        Path | None,
        typer.Option("--credentials", help="Take the Authority client and backend address from this YAML."),
    ] = None,
    days: Annotated[
        int, typer.Option("--days", min=1, max=366, help="Admission requests of the last N days.")
    ] = 7,
    only: Annotated[str | None, typer.Option("--only", help="workloads or requests (default: both).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List every input, not only the changes.")] = False,
    fail_on_deny: Annotated[
        bool,
        typer.Option("--fail-on-deny", help="Exit 3 when a running workload or request would be denied."),
    ] = False,
) -> None:
    """Evaluate a candidate admission configuration against every running workload and the admission
    requests of the last days, through the webhook's own gates (run by the backend): which change from
    allowed to denied, or back, and why.

    Exit status: 0 done; 1 the backend cannot answer; 2 bad arguments or configuration; 3 with
    --fail-on-deny when something allowed would be denied."""
    import asyncio

    import orjson

    candidate_text = config.read_text(encoding="utf-8") if config.exists() else None
    if candidate_text is None:
        fail(f"cannot read {config}")
    candidate = _load(config)
    client = _load(credentials) if credentials else candidate
    body: dict[str, Any] = {"config": inline_keys(candidate_text, config), "days": days}
    if baseline is not None:
        _load(baseline)
        body["baseline"] = inline_keys(baseline.read_text(encoding="utf-8"), baseline)
    if only is not None:
        if only not in ("workloads", "requests"):
            fail("--only must be workloads or requests")
        body["include"] = [only]
    url = f"{_base(client, backend)}/api/v1/scanner/policy/simulations"
    timeout = max(client.backend.request_timeout_seconds, 300.0)
    status, report = asyncio.run(_post(client, url, orjson.dumps(body), timeout))
    if status == 400:
        for item in report.get("errors", []):
            err.print(f"{item['path']}: {item['message']}", highlight=False, soft_wrap=True)
        fail(str(report.get("error", report)))
    if status != 200:
        fail(f"backend refused the simulation ({status}): {report.get('error', report)}", 1)
    if as_json:
        write_json(report)
    else:
        _print_report(report, show_all)
    summary = report["summary"]
    if fail_on_deny and (summary["workloads"]["allowedToDenied"] or summary["requests"]["allowedToDenied"]):
        raise typer.Exit(3)


def inline_keys(text: str, source: Path) -> str:
    """The configuration with every trust-policy key given by ``path`` replaced by its ``pem``: the backend
    runs the simulation and cannot read the operator's files (paths are taken as the config's own: relative
    to the working directory)."""
    import yaml

    document = yaml.safe_load(text)
    changed = False
    admission = ((document or {}).get("zastava") or {}).get("admission") or {}
    for policy in admission.get("trustPolicies") or []:
        for authority in (policy or {}).get("authorities") or []:
            key = (authority or {}).get("key")
            if isinstance(key, dict) and isinstance(key.get("path"), str):
                path = Path(key["path"])
                try:
                    key["pem"] = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    fail(f"{source}: trust policy key {path}: {exc}")
                del key["path"]
                changed = True
    return yaml.safe_dump(document, sort_keys=False) if changed else text


def _reasons(result: dict[str, Any]) -> str:
    lines = [f"{i['image']}: {r}" for i in result.get("images", []) for r in i.get("reasons", [])]
    if not lines and result["candidate"].get("message"):
        lines.append(str(result["candidate"]["message"]))
    return "\n".join(lines) or "-"


def _print_report(report: dict[str, Any], show_all: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = report["summary"]
    w, r = s["workloads"], s["requests"]
    basis = "the baseline configuration" if report["baseline"] == "config" else "what was recorded"
    back = f", {w['deniedToAllowed']} no longer denied" if w["deniedToAllowed"] else ""
    console.print(
        f"workloads: {w['total']} running, [bold red]{w['allowedToDenied']} would be denied[/]{back}",
        highlight=False,
    )
    console.print(
        f"requests (last {report['days']} days): {r['total']} replayed, "
        f"[bold red]{r['allowedToDenied']} allowed→denied[/], "
        f"[green]{r['deniedToAllowed']} denied→allowed[/]",
        highlight=False,
    )
    console.print(
        f"compared with {basis}; {report['evaluated']} distinct inputs in {report['elapsedMs']} ms",
        highlight=False,
        style="dim",
    )
    truncated = [k for k, v in report.get("truncated", {}).items() if v]
    if truncated:
        console.print(f"[yellow]input bounded ({', '.join(truncated)}): the newest were simulated[/]")
    rows = report["results"] if show_all else report["changes"]
    if not rows:
        console.print("no workload or request changes between allowed and denied")
        return
    table = Table(show_lines=True)
    for column in ("change", "kind", "namespace", "pod / workload", "baseline → candidate", "reasons"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            row["change"] or "-",
            row["kind"],
            row["namespace"] or "-",
            "\n".join(filter(None, [row.get("pod"), (row.get("detail") or {}).get("workload")])) or "-",
            f"{row['baseline']['outcome']} → {row['candidate']['outcome']}",
            _reasons(row),
        )
    console.print(table)
