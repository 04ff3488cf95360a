"""The real corpus: published entrypoints of official and vendor images, traced in fake image roots.

The accuracy goals of issue #17 are asserted over the whole corpus (timing is the benchmark's business:
``python bench/run.py entrytrace``); each case's metadata is checked so that a fixture cannot lose its source.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zastava.observer.entrytrace import trace_entrypoint

from .realcorpus import RealCase, build_real, load_real_cases, non_wrapper_terminals, score

CASES = load_real_cases()

#: licenses the stored third-party fixtures are under (see real/README.md)
_LICENSES = {
    "MIT",
    "Apache-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "GPL-2.0-only",
    "GPL-3.0-only",
    "MPL-2.0",
    "ISC",
}
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def real_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[RealCase, Path]]:
    return build_real(tmp_path_factory.mktemp("entrytrace-real"))


def test_corpus_is_large_enough() -> None:
    configurations = {case.spec["image"] for case in CASES}
    assert len(CASES) >= 60 and len(configurations) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_names_its_source(case: RealCase) -> None:
    spec = case.spec
    assert spec["license"] in _LICENSES
    source = spec["source"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repository"])
    assert _COMMIT.match(source["dockerfile"]["commit"])
    for name, entry in (source.get("files") or {}).items():
        assert (case.directory / name).is_file(), name
        assert _COMMIT.match(entry["commit"]) and entry["path"] and entry["to"].startswith("/")
        assert entry.get("license", spec["license"]) in _LICENSES
    config = spec["config"]
    assert config.get("entrypoint") or config.get("cmd")
    assert "user" in config and "env" in config  # the complete environment (empty FROM scratch)
    label = spec["label"]
    assert sum(key in label for key in ("program", "programs", "exits")) == 1


def test_accuracy_goals(real_roots: dict[str, tuple[RealCase, Path]]) -> None:
    """Right exec'd program in >= 97 % of the corpus, and it is the only non-wrapper terminal in >= 90 %."""
    found = only = 0
    misses = []
    for name, (case, root) in real_roots.items():
        result = trace_entrypoint(case.argv, **case.trace_kwargs(root))
        verdict = score(case, result)
        found += verdict.found
        only += verdict.only
        if not verdict.only:
            misses.append(f"{name}: {list(verdict.programs)}")
    total = len(real_roots)
    assert found / total >= 0.97, misses
    assert only / total >= 0.90, misses


@pytest.mark.parametrize(
    ("name", "run_as", "program", "wrappers", "user"),
    [
        # the entrypoint re-execs itself through gosu/su-exec: a second pass as that user, where
        # `id -u` answers the new uid and the script takes its other branch
        ("postgres-16-bullseye", None, "/usr/lib/postgresql/16/bin/postgres", ["gosu"], "postgres"),
        ("redis-7.2-alpine", None, "/usr/local/bin/redis-server", ["su-exec"], "redis"),
        ("znc-slim", None, "/opt/znc/bin/znc", ["su-exec", "tini"], None),
        ("chronograf-1.10", None, "/usr/bin/chronograf", ["setpriv"], None),
        # USER elasticsearch takes the plain exec; `docker run --user 0` the chroot --userspec one
        ("elasticsearch-7", None, "/usr/share/elasticsearch/bin/elasticsearch", ["tini"], None),
        (
            "elasticsearch-7",
            "0",
            "/usr/share/elasticsearch/bin/elasticsearch",
            ["tini", "chroot"],
            "elasticsearch",
        ),
        ("jenkins-lts", None, "/opt/java/openjdk/bin/java", ["tini"], None),
        ("docker-dind-rootless", None, "/usr/local/bin/dockerd", ["rootlesskit"], None),
    ],
)
def test_identity_switches_are_followed(
    real_roots: dict[str, tuple[RealCase, Path]],
    name: str,
    run_as: str | None,
    program: str,
    wrappers: list[str],
    user: str | None,
) -> None:
    case, root = real_roots[name]
    kwargs = case.trace_kwargs(root)
    if run_as is not None:
        kwargs["user"] = run_as
    result = trace_entrypoint(case.argv, **kwargs)
    terminals = non_wrapper_terminals(result)
    assert [t.resolved for t in terminals] == [program]
    assert set(wrappers) <= set(result.wrappers)
    if user is not None:
        assert terminals[0].user == user
    assert result.confidence == 100 and not result.partial


def test_busybox_shell_is_an_applet(real_roots: dict[str, tuple[RealCase, Path]]) -> None:
    case, root = real_roots["alpine-3.23"]
    result = trace_entrypoint(case.argv, **case.trace_kwargs(root))
    (terminal,) = result.terminals
    assert (terminal.resolved, terminal.applet) == ("/bin/busybox", "sh")
    assert result.to_json()["terminals"][0]["applet"] == "sh"


def test_supervised_programs_and_resident_shells(real_roots: dict[str, tuple[RealCase, Path]]) -> None:
    """A supervisor's programs are terminals; a shell is resident only where it really keeps running."""
    case, root = real_roots["richarvey-nginx-php-fpm"]
    result = trace_entrypoint(case.argv, **case.trace_kwargs(root))
    assert score(case, result).only
    case, root = real_roots["linuxserver-nginx-s6"]
    result = trace_entrypoint(case.argv, **case.trace_kwargs(root))
    assert score(case, result).only
    assert not any(t.kind == "shell" for t in result.terminals)


def test_undecidable_choice_is_ambiguous_with_its_condition(
    real_roots: dict[str, tuple[RealCase, Path]],
) -> None:
    """docker's entrypoint asks the docker binary itself (`docker help "$1"`): both answers are listed,
    each with the condition and line it depends on, and the confidence says it is a guess."""
    case, root = real_roots["docker-cli"]
    result = trace_entrypoint(case.argv, **case.trace_kwargs(root))
    assert result.ambiguous and result.confidence <= 50
    terminals = result.to_json()["terminals"]
    assert len(terminals) >= 2
    for terminal in terminals:
        assert terminal["when"], terminal
        decision = terminal["when"][0][0]
        assert decision["file"] and isinstance(decision["line"], int) and decision["condition"]
