"""Log-tail fallback engine over a temporary /var/log/containers-like directory."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from zastava.observer.engines.logtail import LogTailEngine, find_pid_by_container_id, parse_log_name

CID = "a" * 64
CID2 = "0123456789abcdef" * 4


def test_parse_kubelet_log_names() -> None:
    parsed = parse_log_name(f"api-7c9fbbd8b7-ktd84_payments_api-{CID}.log")
    assert parsed is not None
    identity, cid = parsed
    assert (identity.namespace, identity.pod, identity.container, cid) == (
        "payments",
        "api-7c9fbbd8b7-ktd84",
        "api",
        CID,
    )
    for bad in (
        "x.log",
        f"pod_ns_c-{CID[:-1]}.log",
        f"Pod_ns_c-{CID}.log",
        f"pod_ns_c-{CID}.txt",
        "../" + CID,
    ):
        assert parse_log_name(bad) is None


@given(st.text(max_size=600))
def test_parse_never_raises(name: str) -> None:
    result = parse_log_name(name)
    if result is not None:
        assert name.endswith(".log") and result[1] in name


async def test_start_and_remove_events_and_reduced_fidelity(tmp_path: Path) -> None:
    (tmp_path / f"web-0_shop_nginx-{CID}.log").write_text("")
    (tmp_path / "unrelated.log").write_text("")
    engine = LogTailEngine(tmp_path, procfs=str(tmp_path / "noproc"), poll_interval=0.05)
    listed = await engine.list_containers()
    assert [c.id for c in listed] == [CID]
    info = listed[0]
    assert info.fidelity == "reduced" and info.engine == "logtail" and info.pid is None
    assert info.kubernetes is not None and (info.kubernetes.namespace, info.kubernetes.pod) == (
        "shop",
        "web-0",
    )
    assert "pid" in info.missing and "imageDigest" in info.missing
    assert any(e.signal == "logtail.reduced-fidelity" for e in info.evidence)
    assert info.container_id == f"logtail://{CID}"

    events = engine.events()
    (tmp_path / f"web-1_shop_nginx-{CID2}.log").write_text("")
    start = await asyncio.wait_for(anext(events), 5)
    assert (start.kind, start.id, start.source) == ("start", CID2, "logtail")
    (tmp_path / f"web-0_shop_nginx-{CID}.log").unlink()
    removed = await asyncio.wait_for(anext(events), 5)
    assert (removed.kind, removed.id) == ("remove", CID)
    assert await engine.inspect(CID) is None
    assert (await engine.inspect(CID2)) is not None
    await events.aclose()
    await engine.aclose()


def test_missing_directory_is_empty_not_an_error(tmp_path: Path) -> None:
    engine = LogTailEngine(tmp_path / "absent")
    assert asyncio.run(engine.list_containers()) == []


def test_pid_found_from_cgroup_of_a_fake_procfs(tmp_path: Path) -> None:
    for pid, text in (
        (12, f"0::/kubepods/pod1/{CID}\n"),
        (40, f"0::/kubepods/pod1/{CID}\n"),
        (7, "0::/other\n"),
    ):
        os.makedirs(tmp_path / str(pid))
        (tmp_path / str(pid) / "cgroup").write_text(text)
    (tmp_path / "self").mkdir()
    assert find_pid_by_container_id(str(tmp_path), CID) == 12
    assert find_pid_by_container_id(str(tmp_path), CID2) is None
    assert find_pid_by_container_id(str(tmp_path), "../../etc") is None
