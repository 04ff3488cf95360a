"""The console in a real browser, against what ``make run`` starts: the reference Authority, the backend
(``auth: optok``, TLS), the observer on a real Docker engine with the demo workload, and the webhook, each a
``zastava`` process (``tests.harness.devstack.run.Stack``, the code behind ``make run``).

Chromium is Debian's, driven by Playwright; the context ignores certificate errors because the stack's CA is
made for the run (the backend is still HTTPS, so the session cookie is ``Secure`` and ``__Host-``).
Screenshots are saved as test artefacts at each step.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import devstack
from tests.harness.devstack.run import Stack, StackUrls

pytestmark = [pytest.mark.real, pytest.mark.slow]

CANDIDATE = """\
zastava:
  admission:
    enforce: true
    verify: {imageSignature: false, sbomReferrer: false, scannerPolicyPass: false}
    registryDenylist: [docker.io/zastava-demo/entrypoint]
    bannedTags: []
"""


@pytest.fixture(scope="module")
def make_run(
    docker_engine: devstack.DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, StackUrls]]:
    stack = Stack(tmp_path_factory.mktemp("make-run"))
    stack.docker_host = docker_engine.host
    client = docker_engine.client()
    for name in ("demo-app", "demo-entrypoint"):  # left over by an interrupted run
        try:
            client.containers.get(name).remove(force=True)
        except Exception:
            pass
    try:
        stack.demo_workload(docker_engine)
        urls = stack.start()
        yield stack, urls
    finally:
        stack.down()
        for name in ("demo-app", "demo-entrypoint"):
            try:
                client.containers.get(name).remove(force=True)
            except Exception:
                pass


def _until(
    check: Callable[[], bool], seconds: float, what: str, page: Any = None, shot: Path | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    if page is not None and shot is not None:
        page.screenshot(path=str(shot), full_page=True)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


def zastava(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "240"}  # rich's tables: one row per line, nothing folded
    return subprocess.run(
        [sys.executable, "-m", "zastava", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_console_on_the_make_run_stack(
    make_run: tuple[Stack, StackUrls],
    browser: Any,
    artifacts: Path,
    docker_engine: devstack.DockerEngine,
    tmp_path: Path,
) -> None:
    _stack, urls = make_run
    base = urls.backend
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        # no session: the login page
        page.goto(f"{base}/ui/inventory")
        assert "/ui/login" in page.url
        assert page.locator("h1").inner_text() == "Log in to the console"
        page.screenshot(path=str(artifacts / "01-login.png"), full_page=True)

        # log in by pasting an OpToken's headers for POST /ui/login (DPoP proof and all)
        made = zastava(
            "authority",
            "token",
            "--config",
            str(urls.operator_config),
            "--method",
            "POST",
            "--url",
            f"{base}/ui/login",
        )
        assert made.returncode == 0, made.stderr
        headers = json.loads(made.stdout)
        assert headers["Authorization"].startswith("DPoP ") and headers["DPoP"]
        page.fill("#credentials", made.stdout)
        page.click("#login-form button[type=submit]")
        try:
            page.wait_for_url("**/ui/inventory*")
        except Exception:
            page.screenshot(path=str(artifacts / "fail-login.png"), full_page=True)
            raise AssertionError(f"login failed: {page.url}: {page.locator('main').inner_text()}") from None
        cookies = {c["name"]: c for c in context.cookies()}
        session = cookies["__Host-zastava-console"]
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"

        # the demo containers appear once the observer's events are ingested
        def demo_listed() -> bool:
            page.goto(f"{base}/ui/inventory")
            text = page.locator("#inventory").inner_text()
            return "demo-app" in text and "demo-entrypoint" in text

        _until(
            demo_listed, 120, "the demo containers in the inventory", page, artifacts / "fail-inventory.png"
        )
        row = page.locator("tr.container-row", has_text="demo-app").first
        row_text = row.inner_text()
        assert "zastava-demo/app" in row_text
        assert "/usr/bin/sleep" in row_text  # the entrypoint's terminal program (EntryTrace)
        page.screenshot(path=str(artifacts / "02-inventory.png"), full_page=True)

        # drift: a new executable dropped into a running container
        container = docker_engine.client().containers.get("demo-entrypoint")
        done = container.exec_run(
            ["/bin/sh", "-c", "mkdir -p /usr/local/bin && cp /bin/busybox /usr/local/bin/intruder"]
        )
        assert done.exit_code == 0, done.output

        def drift_shown() -> bool:
            page.goto(f"{base}/ui/drift")
            return "/usr/local/bin/intruder" in page.locator("#drift").inner_text()

        _until(drift_shown, 90, "the drift event", page, artifacts / "fail-drift.png")
        page.select_option("select[name=kind]", "DRIFT")  # the filter submits itself
        page.wait_for_url("**kind=DRIFT*")
        assert "/usr/local/bin/intruder" in page.locator("#drift").inner_text()
        page.screenshot(path=str(artifacts / "03-drift.png"), full_page=True)
        page.select_option("select[name=kind]", "POLICY_VIOLATION")
        page.wait_for_url("**kind=POLICY_VIOLATION*")
        assert "/usr/local/bin/intruder" not in page.locator("#drift").inner_text()

        # admission: the demo Pod denied for its :latest tag, and its reasons
        page.goto(f"{base}/ui/admission")
        page.select_option("select[name=outcome]", "deny")
        page.wait_for_url("**outcome=deny*")
        denied = page.locator("tr.decision-row", has_text="demo-latest").first
        denied.locator("a:has-text('details')").click()
        page.wait_for_url("**/ui/admission/*")
        assert page.locator("#outcome").inner_text() == "deny"
        reasons = page.locator("#decision-images").inner_text()
        assert "tag :latest is banned" in reasons
        page.screenshot(path=str(artifacts / "04-decision.png"), full_page=True)

        # health: the node's agent and the charts
        page.goto(f"{base}/ui/health")
        node_row = page.locator("tr.node-row").first.inner_text()
        assert "active" in node_row and "docker" in node_row
        assert page.locator("svg.chart").count() == 2
        page.screenshot(path=str(artifacts / "05-health.png"), full_page=True)

        # simulation: which running workload would the candidate deny?
        page.goto(f"{base}/ui/simulate")
        page.fill("#config", CANDIDATE)
        page.click("#simulate-form button[type=submit]")
        page.wait_for_selector("#simulation-report", timeout=120_000)
        changes = page.locator("#simulation-changes").inner_text()
        assert "demo-entrypoint" in changes and "allowed→denied" in changes
        assert "registry docker.io / repository zastava-demo/entrypoint is denied" in changes
        assert "demo-app" not in changes
        page.screenshot(path=str(artifacts / "06-simulation.png"), full_page=True)

        # the CLI asks the same backend and gets the same answer
        candidate = tmp_path / "candidate.yaml"
        candidate.write_text(CANDIDATE)
        cli = zastava(
            "policy",
            "simulate",
            "--config",
            str(candidate),
            "--credentials",
            str(urls.operator_config),
            "--json",
        )
        assert cli.returncode == 0, cli.stderr
        report = json.loads(cli.stdout)
        denied_workloads = {c["pod"] for c in report["changes"] if c["kind"] == "workload"}
        assert denied_workloads == {"demo-entrypoint"}
        table = zastava(
            "policy", "simulate", "--config", str(candidate), "--credentials", str(urls.operator_config)
        )
        assert table.returncode == 0 and "demo-entrypoint" in table.stdout
        failing = zastava(
            "policy",
            "simulate",
            "--config",
            str(candidate),
            "--credentials",
            str(urls.operator_config),
            "--fail-on-deny",
        )
        assert failing.returncode == 3

        # log out: the session is gone
        page.click("header button:has-text('Log out')")
        page.wait_for_url("**/ui/login*")
        page.goto(f"{base}/ui/inventory")
        assert "/ui/login" in page.url
    finally:
        context.close()


def test_login_link_from_the_cli(make_run: tuple[Stack, StackUrls], browser: Any, artifacts: Path) -> None:
    stack, urls = make_run
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's loop
        printed = pool.submit(stack.login_link, urls).result()  # the link `make run` prints
    assert printed is not None and printed.startswith(f"{urls.backend}/ui/login/link?code=")
    made = zastava("console", "login", "--config", str(urls.operator_config))
    assert made.returncode == 0, made.stderr
    link = made.stdout.strip()
    assert link.startswith(f"{urls.backend}/ui/login/link?code=")
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    try:
        page.goto(link)
        assert "Log in as zastava-operator" in page.locator("h1").inner_text()
        page.click("button:has-text('Continue to the console')")
        page.wait_for_url("**/ui/inventory*")
        assert page.locator(".tenant").inner_text() == "demo"
        page.screenshot(path=str(artifacts / "07-login-link.png"), full_page=True)
        other = browser.new_context(ignore_https_errors=True).new_page()
        other.goto(link)  # a link works once
        assert "not valid" in other.locator("h1").inner_text()
        other.context.close()
    finally:
        context.close()
