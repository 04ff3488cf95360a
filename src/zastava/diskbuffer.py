"""Crash-safe disk ring buffer of records (spec §3.3, §12): the observer publisher's event buffer and the
webhook's decision-record spool.

Layout of the buffer directory::

    seg-<first seq, 20 digits>.log   append-only segment files of records
    ack                              the highest acknowledged sequence number (8 bytes, big endian)
    gap.json                         drops not yet reported by a warning event (see :class:`Gap`)

A record is ``magic(2) | length(4) | crc32(4) | seq(8) | ts_us(8) | payload(length)``; the CRC covers
``seq | ts_us | payload``. ``seq`` numbers increase by one per record across segments, ``ts_us`` is the
event time (µs since the epoch) used to describe a gap. Records are written with one ``write(2)`` each, so a
``kill -9`` of the process loses nothing that :meth:`DiskBuffer.append` returned for (a power loss can lose
what the kernel had not written back; segments are fsynced when they are closed).

Reading resumes after the acknowledged sequence number. A torn or corrupt record (bad magic, short read, CRC
mismatch, absurd length) is skipped and counted: the reader re-synchronises on the next valid record. Fully
acknowledged segments are deleted. Past ``max_bytes`` the oldest segment is dropped whole; the unacknowledged
records it held are counted exactly and their time range is merged into the pending :class:`Gap`.

A full disk is a loss like the cap, never a spin: a record that cannot be written whole (``ENOSPC``,
``EDQUOT``, a short write) is cut off the segment again, counted in :attr:`DiskBuffer.write_failures` and the
pending :class:`Gap`, and :meth:`DiskBuffer.append` raises :class:`DiskBufferFull` (an ``OSError``) so that a
caller that can wait (``zastava events send``) waits for room and retries. ``EFBIG`` (the file size limit)
rolls to a fresh segment once. Persisting the acknowledgement or the gap may fail the same way: the state is
kept in memory (a restart re-sends, and the backend stores each ``eventId`` once).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from .telemetry.logging import fields

__all__ = ["RECORD_HEADER_SIZE", "BufferRecord", "DiskBuffer", "DiskBufferError", "DiskBufferFull", "Gap"]

log = logging.getLogger("zastava.diskbuffer")

_MAGIC = 0x5A56  # "ZV"
_HEADER = struct.Struct(">HII")  # magic, length, crc
_BODY_PREFIX = struct.Struct(">Qq")  # seq, ts_us
RECORD_HEADER_SIZE = _HEADER.size + _BODY_PREFIX.size
_MAGIC_BYTES = _MAGIC.to_bytes(2, "big")
#: Upper bound of one record's payload; anything larger in a header is treated as corruption.
MAX_RECORD_BYTES = 16 * 1024 * 1024
_SEGMENT_PREFIX = "seg-"
_SEGMENT_SUFFIX = ".log"


class DiskBufferError(RuntimeError):
    """The buffer cannot be used (e.g. a record larger than the whole buffer)."""


class DiskBufferFull(OSError):
    """A record could not be written (the disk or the file size limit is full); it was counted as lost."""


@dataclass(frozen=True, slots=True)
class BufferRecord:
    seq: int
    ts_us: int
    payload: bytes


@dataclass
class Gap:
    """Records dropped past the cap and not yet reported: how many, and the event-time range (µs)."""

    count: int = 0
    since_us: int | None = None
    until_us: int | None = None

    def merge(self, count: int, since_us: int | None, until_us: int | None) -> None:
        if count <= 0:
            return
        self.count += count
        if since_us is not None:
            self.since_us = since_us if self.since_us is None else min(self.since_us, since_us)
        if until_us is not None:
            self.until_us = until_us if self.until_us is None else max(self.until_us, until_us)


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int = -1  # last valid seq written/seen; -1 when empty
    size: int = 0
    records: int = 0
    damaged: int = 0  # damaged regions found when scanning at open (counted then)
    scanned: bool = False  # found at open (else written by this process)


def _segment_name(first_seq: int) -> str:
    return f"{_SEGMENT_PREFIX}{first_seq:020d}{_SEGMENT_SUFFIX}"


def encode_record(seq: int, ts_us: int, payload: bytes) -> bytes:
    body_prefix = _BODY_PREFIX.pack(seq, ts_us)
    crc = zlib.crc32(payload, zlib.crc32(body_prefix))
    return _HEADER.pack(_MAGIC, len(payload), crc) + body_prefix + payload


def _decode_at(data: bytes | memoryview, pos: int) -> tuple[BufferRecord | None, int]:
    """(record, end) when a valid record starts at ``pos``; (None, pos) otherwise."""
    if len(data) - pos < RECORD_HEADER_SIZE:
        return None, pos
    magic, length, crc = _HEADER.unpack_from(data, pos)
    if magic != _MAGIC or length > MAX_RECORD_BYTES:
        return None, pos
    start = pos + _HEADER.size
    end = start + _BODY_PREFIX.size + length
    if end > len(data):
        return None, pos
    body = bytes(data[start:end])
    if zlib.crc32(body) != crc:
        return None, pos
    seq, ts_us = _BODY_PREFIX.unpack_from(body, 0)
    return BufferRecord(seq, ts_us, body[_BODY_PREFIX.size :]), end


def iter_records(data: bytes) -> Iterator[tuple[BufferRecord | None, int, int]]:
    """Yield ``(record, start, end)`` over a segment's bytes; damaged regions yield ``(None, start, end)``.

    After a damaged region the scan resumes at the next position where a whole valid record starts.
    """
    pos = 0
    size = len(data)
    while pos < size:
        record, end = _decode_at(data, pos)
        if record is not None:
            yield record, pos, end
            pos = end
            continue
        bad_start = pos
        nxt = data.find(_MAGIC_BYTES, pos + 1)
        while nxt != -1:
            record, _ = _decode_at(data, nxt)
            if record is not None:
                break
            nxt = data.find(_MAGIC_BYTES, nxt + 1)
        pos = size if nxt == -1 else nxt
        yield None, bad_start, pos


class DiskBuffer:
    """An append-only, size-capped, crash-safe queue of byte records on disk.

    Single-threaded: call it from one thread (the publisher's event loop). ``on_drop(count, since_us,
    until_us)`` is called after records were dropped past the cap; ``on_corrupt(count)`` when damaged
    records were skipped.
    """

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int = 50_000_000,
        *,
        segment_bytes: int | None = None,
        fsync_on_roll: bool = True,
    ) -> None:
        if max_bytes < 4096:
            raise ValueError("buffer max_bytes must be at least 4096")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(1024, min(4 * 1024 * 1024, max_bytes // 16))
        if self.segment_bytes > max_bytes // 2:
            raise ValueError("segment_bytes must be at most half of max_bytes")
        self.fsync_on_roll = fsync_on_roll
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._acked = -1
        self._next_seq = 0
        self._read_seg = 0  # index into _segments
        self._read_pos = 0  # byte offset in that segment
        self._read_cache: tuple[Path, bytes] | None = None
        self._bytes = 0
        self._floor = -1  # highest sequence number dropped past the cap
        self._read_hi = -1  # highest sequence number handed out by read()
        # (seq, ts_us) of records dropped past the cap while handed out to the sender: not counted yet,
        # as they may still be delivered; counted on rewind() (the send failed), forgotten on ack()
        self._limbo: list[tuple[int, int]] = []
        self.gap = Gap()
        self.dropped_total = 0
        self.corrupt_total = 0
        #: records that could not be written (disk full, short write); counted in the gap as well
        self.write_failures = 0
        self._persist_failed = False
        self._opened = False

    # ------------------------------------------------------------------------------------------ opening

    def open(self) -> DiskBuffer:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._acked = self._read_ack()
        self._read_gap()
        segments = sorted(
            p for p in self.directory.iterdir() if p.name.startswith(_SEGMENT_PREFIX) and p.suffix == ".log"
        )
        last_seq = self._acked
        damaged_only: list[_Segment] = []
        for path in segments:
            try:
                first = int(path.name[len(_SEGMENT_PREFIX) : -len(_SEGMENT_SUFFIX)])
            except ValueError:
                log.warning("ignoring unexpected file in buffer dir", extra=fields(file=path.name))
                continue
            seg = self._scan(path, first)
            if seg.records == 0:  # empty, or nothing but damage: count it and reclaim the file
                if seg.damaged:
                    damaged_only.append(seg)
                path.unlink(missing_ok=True)
                continue
            if seg.last_seq >= 0 and seg.last_seq <= self._acked:
                path.unlink(missing_ok=True)  # fully acknowledged; deleting was interrupted
                continue
            self._segments.append(seg)
            self._bytes += seg.size
            last_seq = max(last_seq, seg.last_seq)
        self._next_seq = last_seq + 1
        self._read_seg, self._read_pos = 0, 0
        self._opened = True
        damaged = sum(seg.damaged for seg in [*damaged_only, *self._segments])
        if damaged:
            self.corrupt_total += damaged
            log.warning(
                "skipped damaged buffer records",
                extra=fields(
                    count=damaged,
                    segments=[s.path.name for s in [*damaged_only, *self._segments] if s.damaged],
                ),
            )
            self.on_corrupt(damaged)
        # Always write into a fresh segment: an old one may end in a torn record.
        self._roll()
        return self

    def _scan(self, path: Path, first: int) -> _Segment:
        data = path.read_bytes()
        seg = _Segment(path, first, size=len(data), scanned=True)
        for record, _start, _end in iter_records(data):
            if record is None:
                seg.damaged += 1
                continue
            seg.records += 1
            seg.last_seq = max(seg.last_seq, record.seq)
        return seg

    def _read_ack(self) -> int:
        try:
            raw = (self.directory / "ack").read_bytes()
        except FileNotFoundError:
            return -1
        if len(raw) != 12:
            log.warning("buffer ack file damaged; replaying everything", extra=fields(size=len(raw)))
            return -1
        value, crc = struct.unpack(">qI", raw)
        if zlib.crc32(raw[:8]) != crc:
            log.warning("buffer ack file checksum mismatch; replaying everything")
            return -1
        return int(value)

    def _write_small(self, name: str, data: bytes) -> bool:
        """Replace ``name`` atomically; False (logged once until it works again) when the disk refuses."""
        tmp = self.directory / f".{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            tmp.replace(self.directory / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if not self._persist_failed:
                log.warning(
                    "cannot persist buffer state; kept in memory",
                    extra=fields(file=name, error=exc.strerror or str(exc)),
                )
            self._persist_failed = True
            return False
        self._persist_failed = False
        return True

    def _read_gap(self) -> None:
        try:
            raw = orjson.loads((self.directory / "gap.json").read_bytes())
            self.gap = Gap(int(raw["count"]), raw.get("sinceUs"), raw.get("untilUs"))
        except FileNotFoundError:
            return
        except (ValueError, KeyError, TypeError):
            log.warning("buffer gap file damaged; ignoring it")

    def _persist_gap(self) -> None:
        if self.gap.count:
            self._write_small(
                "gap.json",
                orjson.dumps(
                    {"count": self.gap.count, "sinceUs": self.gap.since_us, "untilUs": self.gap.until_us}
                ),
            )
        else:
            try:
                (self.directory / "gap.json").unlink(missing_ok=True)
            except OSError:
                pass  # a read-only or vanished directory: the in-memory gap is the truth

    def take_gap(self) -> Gap | None:
        """The pending gap (and forget it); None when nothing was dropped since the last call."""
        if not self.gap.count:
            return None
        gap, self.gap = self.gap, Gap()
        self._persist_gap()
        return gap

    def restore_gap(self, gap: Gap) -> None:
        """Put back a gap taken with :meth:`take_gap` that could not be reported."""
        self.gap.merge(gap.count, gap.since_us, gap.until_us)
        self._persist_gap()

    # ------------------------------------------------------------------------------------------ writing

    def _roll(self) -> None:
        """Close the segment being written and start a new one (an error leaves the old one open)."""
        path = self.directory / _segment_name(self._next_seq)
        if self._segments and self._segments[-1].path == path:
            return  # nothing was written since the last roll
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if self._fd is not None:
            try:
                if self.fsync_on_roll:
                    os.fsync(self._fd)
            except OSError as exc:  # written back later by the kernel, or lost with a crash: say so
                log.warning("buffer segment fsync failed", extra=fields(error=exc.strerror or str(exc)))
            finally:
                os.close(self._fd)
        self._fd = fd
        self._segments.append(_Segment(path, self._next_seq))

    def fits(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes can be appended without dropping the oldest records."""
        return self._bytes + size + RECORD_HEADER_SIZE <= self.max_bytes

    def append(self, payload: bytes, ts_us: int = 0, *, count_loss: bool = True) -> int:
        """Append one record; returns its sequence number. Drops the oldest segments past the cap.

        Raises :class:`DiskBufferFull` when the record cannot be written: counted as lost (in
        :attr:`write_failures` and the gap) unless ``count_loss`` is false (the caller keeps the record)."""
        if not self._opened or self._fd is None:
            raise DiskBufferError("buffer is not open")
        record = encode_record(self._next_seq, ts_us, payload)
        if len(record) > self.segment_bytes:
            raise DiskBufferError(
                f"record of {len(record)} bytes exceeds the buffer segment size {self.segment_bytes}"
            )
        current = self._segments[-1]
        try:
            if current.size and current.size + len(record) > self.segment_bytes:
                self._roll()
                current = self._segments[-1]
            while self._bytes + len(record) > self.max_bytes and len(self._segments) > 1:
                self._drop_oldest()
            try:
                self._write_whole(current, record)
            except OSError as exc:
                # EFBIG (file size limit): a fresh segment starts at 0 bytes; ENOSPC with everything in this
                # segment acknowledged: only a fresh segment lets the delivered one be deleted
                delivered = current.records > 0 and current.last_seq <= self._acked
                if not current.size or not (exc.errno == errno.EFBIG or delivered):
                    raise
                self._roll()
                if delivered:
                    self._delete_acknowledged()
                current = self._segments[-1]
                self._write_whole(current, record)
        except OSError as exc:
            if count_loss:
                self._write_failed(ts_us, exc)
            raise DiskBufferFull(exc.errno or errno.EIO, f"disk buffer: {exc.strerror or exc}") from None
        seq = self._next_seq
        self._next_seq += 1
        current.size += len(record)
        current.records += 1
        current.last_seq = seq
        self._bytes += len(record)
        return seq

    def _write_whole(self, segment: _Segment, record: bytes) -> None:
        """Write ``record`` at the end of ``segment`` or not at all: a short write is cut off again, so the
        file never holds a torn record and the tracked size is always the file's."""
        assert self._fd is not None
        try:
            written = os.write(self._fd, record)
        except OSError:
            written = -1
            raise
        finally:
            if 0 <= written < len(record) or written == -1:
                try:
                    os.ftruncate(self._fd, segment.size)
                except OSError:
                    log.warning("cannot cut a torn record off the buffer segment; it is skipped on read")
        if written < len(record):
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(record)} bytes)")

    def _write_failed(self, ts_us: int, exc: OSError) -> None:
        self.write_failures += 1
        self.dropped_total += 1
        self.gap.merge(1, ts_us or None, ts_us or None)
        self._persist_gap()
        if self.write_failures == 1 or self.write_failures % 1000 == 0:
            log.error(
                "cannot write to the disk buffer: event lost (counted, reported by a gap event)",
                extra=fields(error=exc.strerror or str(exc), lost=self.write_failures),
            )
        self.on_drop(1, ts_us or None, ts_us or None)

    def _drop_oldest(self) -> None:
        seg = self._segments.pop(0)
        dropped: list[tuple[int, int]] = []
        try:
            data = seg.path.read_bytes()
        except FileNotFoundError:
            data = b""
        for record, _s, _e in iter_records(data):
            if record is None:
                continue
            self._floor = max(self._floor, record.seq)
            if record.seq <= self._acked:
                continue  # delivered already
            if record.seq <= self._read_hi:
                self._limbo.append((record.seq, record.ts_us))  # in flight: decided by ack()/rewind()
                continue
            dropped.append((record.seq, record.ts_us))
        seg.path.unlink(missing_ok=True)
        self._bytes -= seg.size
        # keep the reader on the same record (segment indices shifted by one)
        if self._read_seg == 0:
            self._read_pos = 0
        else:
            self._read_seg -= 1
        self._read_cache = None
        self._count_dropped(dropped, seg.path.name)

    def _count_dropped(self, dropped: list[tuple[int, int]], where: str) -> None:
        if not dropped:
            return
        count = len(dropped)
        since = min(ts for _seq, ts in dropped)
        until = max(ts for _seq, ts in dropped)
        self.dropped_total += count
        self.gap.merge(count, since, until)
        self._persist_gap()
        log.warning(
            "buffer full: dropped oldest events",
            extra=fields(dropped=count, segment=where, bufferBytes=self._bytes),
        )
        self.on_drop(count, since, until)

    def on_drop(self, count: int, since_us: int | None, until_us: int | None) -> None:
        """Hook: records were dropped (assigned by the publisher)."""

    def on_corrupt(self, count: int) -> None:
        """Hook: damaged records were skipped (assigned by the publisher)."""

    # ------------------------------------------------------------------------------------------ reading

    def _segment_data(self, seg: _Segment, pos: int) -> tuple[bytes, int]:
        """``(data, base)``: bytes of ``seg`` from offset ``base`` (<= ``pos``) to its end.

        Closed segments are read whole once and cached; the segment being written is read from ``pos`` only,
        so following the writer costs what was appended, not the segment size.
        """
        active = seg is self._segments[-1]
        if not active:
            cached = self._read_cache
            if cached is not None and cached[0] == seg.path and len(cached[1]) >= seg.size:
                return cached[1], 0
        try:
            with open(seg.path, "rb") as fh:
                if active:
                    fh.seek(pos)
                    return fh.read(seg.size - pos), pos
                data = fh.read()
        except FileNotFoundError:
            return b"", pos
        self._read_cache = (seg.path, data)
        return data, 0

    def read(self, max_records: int, max_bytes: int = 8 * 1024 * 1024) -> list[BufferRecord]:
        """Up to ``max_records`` unacknowledged records after the read cursor (the cursor advances)."""
        out: list[BufferRecord] = []
        total = 0
        while len(out) < max_records and self._read_seg < len(self._segments):
            seg = self._segments[self._read_seg]
            if self._read_pos >= seg.size:
                if self._read_seg == len(self._segments) - 1:
                    break
                self._read_seg += 1
                self._read_pos = 0
                continue
            data, base = self._segment_data(seg, self._read_pos)
            if base + len(data) < seg.size:
                # the file is shorter than tracked (cut by hand, or a write that was not undone): what is not
                # there cannot be read, and looping on it would never end
                log.warning(
                    "buffer segment shorter than written; the missing tail is skipped",
                    extra=fields(segment=seg.path.name, size=base + len(data), expected=seg.size),
                )
                self._bytes -= seg.size - (base + len(data))
                seg.size = base + len(data)
                if self._read_pos >= seg.size:
                    continue
            limit = min(len(data), seg.size - base)  # relative end
            view = memoryview(data)[:limit]
            rel = self._read_pos - base
            corrupt = 0
            while rel < limit and len(out) < max_records and total < max_bytes:
                record, rel_end = _decode_at(view, rel)
                if record is None:
                    # find the next valid record
                    nxt = data.find(_MAGIC_BYTES, rel + 1, limit)
                    while nxt != -1 and _decode_at(view, nxt)[0] is None:
                        nxt = data.find(_MAGIC_BYTES, nxt + 1, limit)
                    corrupt += 1
                    rel = limit if nxt == -1 else nxt
                    continue
                rel = rel_end
                if record.seq <= self._acked:
                    continue
                out.append(record)
                total += len(record.payload)
                self._read_hi = max(self._read_hi, record.seq)
            pos = base + rel
            self._read_pos = pos
            if corrupt and not seg.scanned:  # damage found at open was counted then
                self.corrupt_total += corrupt
                log.warning(
                    "skipped damaged buffer records", extra=fields(count=corrupt, segment=seg.path.name)
                )
                self.on_corrupt(corrupt)
            if total >= max_bytes:
                break
        return out

    def rewind(self) -> None:
        """Move the read cursor back to the first unacknowledged record."""
        self._read_seg, self._read_pos = 0, 0
        self._read_hi = self._acked
        limbo = [item for item in self._limbo if item[0] > self._acked]
        self._limbo = []
        self._count_dropped(limbo, "in flight")

    def ack(self, seq: int) -> None:
        """Acknowledge every record up to ``seq``; deletes fully acknowledged segments."""
        if seq <= self._acked:
            return
        self._acked = seq
        if self._limbo:
            self._limbo = [item for item in self._limbo if item[0] > seq]
        # when the disk is full this may fail: delivery happened all the same (kept in memory; a restart
        # re-sends, and the backend stores each eventId once) — and deleting segments below frees the disk
        self._write_small(
            "ack", struct.pack(">q", seq) + struct.pack(">I", zlib.crc32(struct.pack(">q", seq)))
        )
        self._delete_acknowledged()

    def _delete_acknowledged(self) -> None:
        """Delete the segments (not the one being written) whose every record is acknowledged."""
        seq = self._acked
        while len(self._segments) > 1 and 0 <= self._segments[0].last_seq <= seq:
            seg = self._segments.pop(0)
            try:
                seg.path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("cannot delete an acknowledged segment", extra=fields(error=str(exc)))
            self._bytes -= seg.size
            if self._read_seg == 0:
                self._read_pos = 0
            else:
                self._read_seg -= 1
            self._read_cache = None

    # ------------------------------------------------------------------------------------------ state

    @property
    def bytes_in_use(self) -> int:
        return self._bytes

    @property
    def acked_seq(self) -> int:
        return self._acked

    @property
    def settled_seq(self) -> int:
        """Every record up to here is acknowledged or was dropped past the cap."""
        return max(self._acked, self._floor)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last appended record (-1 when none ever was)."""
        return self._next_seq - 1

    @property
    def pending(self) -> int:
        """Records appended and neither acknowledged nor dropped (damaged ones included)."""
        return max(0, self.last_seq - max(self._acked, self._floor))

    def has_unread(self) -> bool:
        if self._read_seg < len(self._segments) - 1:
            return True
        if self._read_seg >= len(self._segments):
            return False
        return self._read_pos < self._segments[self._read_seg].size

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:  # e.g. ENOSPC from delayed allocation: say so, close all the same
                log.warning(
                    "buffer segment fsync failed at close", extra=fields(error=exc.strerror or str(exc))
                )
            finally:
                os.close(self._fd)
                self._fd = None
        if self._segments and self._segments[-1].size == 0:
            with contextlib.suppress(OSError):
                self._segments[-1].path.unlink(missing_ok=True)
        self._opened = False

    def __enter__(self) -> DiskBuffer:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
