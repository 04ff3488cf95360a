"""Body reading and envelope splitting: size caps before and after gzip, never an unexpected exception."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zastava.backend.ingest import BodyError, gunzip_bounded, read_body, split_envelopes


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read(data: bytes, **kw: object) -> bytes:
    args: dict[str, object] = {
        "content_length": None,
        "content_encoding": None,
        "max_bytes": 1000,
        "max_decompressed": 5000,
    }
    args.update(kw)
    return await read_body(chunks(data), **args)  # type: ignore[arg-type]


async def test_identity_and_gzip() -> None:
    assert await read(b"hello") == b"hello"
    assert await read(gzip.compress(b"x" * 4000), content_encoding="gzip") == b"x" * 4000
    assert await read(gzip.compress(b"x" * 4000), content_encoding="X-GZIP ") == b"x" * 4000


@pytest.mark.parametrize(
    ("kwargs", "data", "status"),
    [
        ({"content_length": "1001"}, b"", 413),
        ({"content_length": "abc"}, b"", 400),
        ({}, b"y" * 1001, 413),
        ({"content_encoding": "deflate"}, b"", 415),
        ({"content_encoding": "gzip"}, gzip.compress(b"z" * 5001), 413),
        ({"content_encoding": "gzip"}, b"\x1f\x8b garbage", 400),
    ],
)
async def test_refusals(kwargs: dict[str, object], data: bytes, status: int) -> None:
    with pytest.raises(BodyError) as info:
        await read(data, **kwargs)
    assert info.value.status == status


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * 200_000_000)
    with pytest.raises(BodyError) as info:
        gunzip_bounded(bomb, 1_000_000)
    assert info.value.status == 413
    # a bomb hidden in a second member is caught too
    with pytest.raises(BodyError):
        gunzip_bounded(gzip.compress(b"ok") + bomb, 1_000_000)


def test_trailing_zero_padding_is_tolerated() -> None:
    assert gunzip_bounded(gzip.compress(b"abc") + b"\0" * 16, 100) == b"abc"


def test_split_forms() -> None:
    env = {"schemaVersion": "x", "event": {}}
    assert [i.data for i in split_envelopes(orjson.dumps([env, env]), 10)] == [env, env]
    assert [i.data for i in split_envelopes(orjson.dumps(env, option=orjson.OPT_INDENT_2), 10)] == [env]
    items = split_envelopes(b"\n" + orjson.dumps(env) + b"\n\n  \n{bad\n" + orjson.dumps(env), 10)
    assert [i.index for i in items] == [0, 1, 2]
    assert items[1].error is not None and "not valid JSON" in items[1].error
    assert items[0].raw == orjson.dumps(env) and items[0].text() == orjson.dumps(env).decode()
    lazy = split_envelopes(b" " + orjson.dumps(env) + b"\t\r\n{bad\n", 10, parse=False)
    assert [(i.unparsed, i.data, i.raw) for i in lazy] == [
        (True, None, orjson.dumps(env)),
        (True, None, b"{bad"),
    ]
    lazy[1].parse()
    assert not lazy[1].unparsed and lazy[1].error is not None and "not valid JSON" in lazy[1].error
    # only JSON's own whitespace is trimmed around a line: a form feed stays and makes the line invalid
    assert split_envelopes(orjson.dumps(env) + b"\x0c", 10)[0].error is not None
    with pytest.raises(BodyError) as info:
        split_envelopes(b"\n".join([orjson.dumps(env)] * 11), 10)
    assert info.value.status == 413
    items = split_envelopes(b'[{"a": 1}', 10)  # judged as one bad line
    assert len(items) == 1 and items[0].error is not None
    with pytest.raises(BodyError):
        split_envelopes(b"[]", 10)
    with pytest.raises(BodyError) as info:
        split_envelopes(orjson.dumps([env] * 11), 10)
    assert info.value.status == 413


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_split_never_raises_anything_but_body_error(data: bytes) -> None:
    try:
        items = split_envelopes(data, 50)
    except BodyError as exc:
        assert exc.status in (400, 413)
        return
    assert [i.index for i in items] == list(range(len(items)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_gunzip_never_raises_anything_but_body_error(data: bytes) -> None:
    try:
        out = gunzip_bounded(gzip.compress(data)[: len(data) // 2 + 10], 1000)
    except BodyError as exc:
        assert exc.status in (400, 413)
        return
    assert len(out) <= 1000


def test_a_newline_bomb_is_refused_as_it_inflates_but_a_pretty_document_is_not() -> None:
    import zlib

    from zastava.backend.ingest import MAX_DOCUMENT_BYTES

    bomb = zlib.compress(b"\n" * (MAX_DOCUMENT_BYTES + 2_000_000), 9, wbits=31)
    with pytest.raises(BodyError) as info:
        gunzip_bounded(bomb, 64_000_000, max_lines=1000)
    assert info.value.status == 413 and "lines" in str(info.value)
    pretty = orjson.dumps([{"a": [1, 2, 3]}] * 5000, option=orjson.OPT_INDENT_2)  # 50,000 lines, < 4 MiB
    assert gunzip_bounded(gzip.compress(pretty), 64_000_000, max_lines=1000) == pretty


def test_gzip_members_are_bounded() -> None:
    body = gzip.compress(b"a") * 64
    assert gunzip_bounded(body, 1000) == b"a" * 64
    with pytest.raises(BodyError) as info:
        gunzip_bounded(body + gzip.compress(b"a"), 1000)
    assert info.value.status == 400 and "members" in str(info.value)
