"""The disk ring buffer: order, acknowledgement, reopen/replay, cap with exact drop accounting, corruption."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zastava.observer.publisher.buffer import RECORD_HEADER_SIZE, DiskBuffer, DiskBufferError


def payload(i: int, size: int = 40) -> bytes:
    return f"event-{i:06d}-".encode().ljust(size, b".")


def drain(buf: DiskBuffer) -> list[bytes]:
    out = []
    while True:
        records = buf.read(7)
        if not records:
            return out
        out.extend(r.payload for r in records)
        buf.ack(records[-1].seq)


def test_append_read_ack_in_order(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 64 * 1024) as buf:
        for i in range(50):
            assert buf.append(payload(i), ts_us=i) == i
        assert buf.pending == 50
        assert drain(buf) == [payload(i) for i in range(50)]
        assert buf.pending == 0 and buf.acked_seq == 49


def test_reopen_replays_only_unacknowledged(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 64 * 1024) as buf:
        for i in range(30):
            buf.append(payload(i))
        records = buf.read(10)
        buf.ack(records[-1].seq)
        buf.read(5)  # read but not acknowledged: must come back
    with DiskBuffer(tmp_path, 64 * 1024) as buf:
        assert buf.pending == 20
        assert drain(buf) == [payload(i) for i in range(10, 30)]
        assert buf.append(payload(99)) == 30  # sequence numbers continue


def test_acknowledged_segments_are_reclaimed(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 64 * 1024, segment_bytes=1024) as buf:
        for i in range(200):
            buf.append(payload(i))
        segments_before = len(list(tmp_path.glob("seg-*.log")))
        assert segments_before > 5
        assert len(drain(buf)) == 200
        assert len(list(tmp_path.glob("seg-*.log"))) == 1  # only the segment being written remains
        assert buf.bytes_in_use < 1024


def test_cap_drops_exactly_the_oldest_and_counts_them(tmp_path: Path) -> None:
    record_size = RECORD_HEADER_SIZE + 40
    drops: list[tuple[int, int | None, int | None]] = []
    with DiskBuffer(tmp_path, 8192, segment_bytes=1024) as buf:
        buf.on_drop = lambda c, s, u: drops.append((c, s, u))  # type: ignore[method-assign]
        for i in range(1000):
            buf.append(payload(i), ts_us=1_000 + i)
            assert buf.bytes_in_use <= 8192
        kept = drain(buf)
    dropped = sum(c for c, _s, _u in drops)
    assert dropped == buf.dropped_total == 1000 - len(kept)
    assert kept == [payload(i) for i in range(dropped, 1000)]  # a suffix: exactly the oldest went
    assert len(kept) * record_size <= 8192
    assert buf.gap.count == dropped
    assert (buf.gap.since_us, buf.gap.until_us) == (1_000, 1_000 + dropped - 1)


def test_gap_survives_reopen_and_is_taken_once(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 8192, segment_bytes=1024) as buf:
        for i in range(500):
            buf.append(payload(i), ts_us=i)
        expected = buf.dropped_total
    with DiskBuffer(tmp_path, 8192, segment_bytes=1024) as buf:
        gap = buf.take_gap()
        assert gap is not None and gap.count == expected and gap.since_us == 0
        assert buf.take_gap() is None
    with DiskBuffer(tmp_path, 8192, segment_bytes=1024) as buf:
        assert buf.take_gap() is None


def test_in_flight_records_dropped_are_counted_only_if_the_send_fails(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 8192, segment_bytes=1024) as buf:
        for i in range(20):
            buf.append(payload(i), ts_us=i)
        in_flight = buf.read(5)
        for i in range(20, 400):
            buf.append(payload(i), ts_us=i)
        counted = buf.dropped_total
        buf.rewind()  # the send failed: the in-flight records that were dropped are lost → counted
        assert buf.dropped_total == counted + len(in_flight)
        kept = drain(buf)
        assert buf.dropped_total + len(kept) == 400


def test_corrupt_record_is_skipped_and_counted(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 64 * 1024) as buf:
        for i in range(10):
            buf.append(payload(i))
    (segment,) = tmp_path.glob("seg-*.log")
    data = bytearray(segment.read_bytes())
    size = RECORD_HEADER_SIZE + 40
    data[3 * size + RECORD_HEADER_SIZE + 5] ^= 0xFF  # payload byte of record 3: CRC mismatch
    data[6 * size + 2] ^= 0xFF  # length field of record 6: resync needed
    segment.write_bytes(bytes(data[: 10 * size - 7]))  # and a torn last record
    corrupt: list[int] = []
    buf = DiskBuffer(tmp_path, 64 * 1024)
    buf.on_corrupt = corrupt.append  # type: ignore[method-assign]
    with buf:
        kept = drain(buf)
        assert kept == [payload(i) for i in (0, 1, 2, 4, 5, 7, 8)]
        assert sum(corrupt) == buf.corrupt_total == 3
        assert buf.append(payload(10)) == 9  # new records never collide with old sequence numbers


def test_garbage_files_and_damaged_ack_do_not_break_open(tmp_path: Path) -> None:
    (tmp_path / "seg-notanumber.log").write_bytes(b"junk")
    (tmp_path / "seg-00000000000000000000.log").write_bytes(b"\x00" * 100)
    (tmp_path / "ack").write_bytes(b"xx")
    with DiskBuffer(tmp_path, 64 * 1024) as buf:
        assert drain(buf) == []
        assert buf.corrupt_total == 1
        buf.append(payload(1))
        assert drain(buf) == [payload(1)]


def test_oversized_record_is_refused(tmp_path: Path) -> None:
    with (
        DiskBuffer(tmp_path, 8192, segment_bytes=1024) as buf,
        pytest.raises(DiskBufferError, match="exceeds"),
    ):
        buf.append(b"x" * 2000)


def test_closed_buffer_refuses_appends(tmp_path: Path) -> None:
    buf = DiskBuffer(tmp_path, 8192)
    with pytest.raises(DiskBufferError, match="not open"):
        buf.append(b"x")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["append", "read", "ack", "reopen", "rewind"]), st.integers(1, 9))))
def test_model_every_unacknowledged_record_comes_back_in_order(tmp_path_factory, ops) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("buf")
    buf = DiskBuffer(directory, 1 << 20).open()
    model: list[int] = []  # seqs not yet acknowledged
    read: list[int] = []
    counter = 0
    for op, n in ops:
        if op == "append":
            for _ in range(n):
                assert buf.append(payload(counter)) == counter
                model.append(counter)
                counter += 1
        elif op == "read":
            read.extend(r.seq for r in buf.read(n))
        elif op == "ack" and read:
            upto = read[min(n, len(read)) - 1]
            buf.ack(upto)
            model = [s for s in model if s > upto]
            read = [s for s in read if s > upto]
        elif op == "reopen":
            buf.close()
            buf = DiskBuffer(directory, 1 << 20).open()
            read = []
        elif op == "rewind":
            buf.rewind()
            read = []
        assert read == model[: len(read)]
    buf.rewind()
    rest = []
    while records := buf.read(100):
        rest.extend(r.seq for r in records)
    assert rest == model
    buf.close()


def test_a_segment_shorter_than_written_is_read_to_its_end_without_spinning(tmp_path: Path) -> None:
    """Issue 21: a segment cut behind the buffer's back (or a write that could not be undone) once made
    ``read()`` loop forever on the bytes that were not there."""
    with DiskBuffer(tmp_path, 64 * 1024) as buf:
        for i in range(10):
            buf.append(payload(i))
        segment = sorted(tmp_path.glob("seg-*.log"))[-1]
        size = segment.stat().st_size
        os.truncate(segment, size - 30)  # the last record loses its tail
        records = buf.read(100)
        assert [r.payload for r in records] == [payload(i) for i in range(9)]
        assert buf.read(100) == [] and not buf.has_unread()
        assert buf.bytes_in_use == size - 30
        buf.ack(records[-1].seq)
        assert buf.append(payload(10)) == 10  # writing goes on
        assert [r.payload for r in buf.read(100)] == [payload(10)]


def test_a_failed_ack_write_keeps_the_acknowledgement_in_memory(tmp_path: Path) -> None:
    with DiskBuffer(tmp_path, 64 * 1024, segment_bytes=1024) as buf:
        for i in range(60):
            buf.append(payload(i))
        (tmp_path / ".ack.tmp").mkdir()  # the state file cannot be written
        records = buf.read(100)
        buf.ack(records[-1].seq)
        assert buf.acked_seq == records[-1].seq and buf.pending == 0
        assert len(list(tmp_path.glob("seg-*.log"))) == 1  # delivered segments deleted all the same
