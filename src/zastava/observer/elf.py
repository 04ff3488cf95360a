"""GNU build-id of an ELF file (``NT_GNU_BUILD_ID``), read from bytes or a file descriptor.

Only the few structures needed are read: the ELF header, the program headers (``PT_NOTE`` segments) and,
when no segment carries the note, the section headers (``SHT_NOTE`` sections). ELF32 and ELF64, little- and
big-endian. Every offset and size is checked against the file size and every loop is bounded (headers, notes,
bytes), so a hostile file (truncated, huge or looping note sizes, wrong class) yields an error value quickly
and never an exception or a hang. Nothing is ever executed and files are never mapped (a concurrent
truncation cannot raise SIGBUS).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_HEADERS",
    "MAX_NOTE_BYTES",
    "NT_GNU_BUILD_ID",
    "BuildIdResult",
    "ElfError",
    "read_build_id",
]

NT_GNU_BUILD_ID = 3
PT_NOTE = 4
SHT_NOTE = 7
PN_XNUM = 0xFFFF
#: Program/section headers examined at most.
MAX_HEADERS = 4096
#: Note bytes read at most over the whole file.
MAX_NOTE_BYTES = 1 << 20
#: Notes parsed at most over the whole file.
MAX_NOTES = 4096
#: Build-ids are 1..64 bytes (the contract allows up to 128 hex digits).
MAX_BUILD_ID_BYTES = 64

Status = Literal["ok", "absent", "not-elf", "malformed", "unreadable"]


class ElfError(ValueError):
    """Malformed ELF structure (internal; surfaced as a :class:`BuildIdResult` with status ``malformed``)."""


@dataclass(frozen=True, slots=True)
class BuildIdResult:
    """``build_id`` is lower-case hex when ``status == "ok"``, else None with a ``detail`` saying why."""

    build_id: str | None
    status: Status
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Source:
    """Bounded random access to bytes or an fd (``pread``; never mmap)."""

    def __init__(self, source: bytes | bytearray | memoryview | int) -> None:
        if isinstance(source, int):
            self.fd: int | None = source
            self.data: memoryview | None = None
            self.size = os.fstat(source).st_size
        else:
            self.fd = None
            self.data = memoryview(source).cast("B")
            self.size = len(self.data)

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ElfError(f"range {offset}+{size} beyond end of file ({self.size} bytes)")
        if self.data is not None:
            return bytes(self.data[offset : offset + size])
        assert self.fd is not None
        out = bytearray()
        while len(out) < size:
            chunk = os.pread(self.fd, size - len(out), offset + len(out))
            if not chunk:
                raise ElfError(f"file shrank while reading at {offset + len(out)}")
            out += chunk
        return bytes(out)


@dataclass(frozen=True, slots=True)
class _Header:
    is64: bool
    endian: str  # "<" or ">"
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int


def _header(src: _Source) -> _Header:
    ident = src.read(0, 16)
    klass, data = ident[4], ident[5]
    if klass not in (1, 2):
        raise ElfError(f"unsupported ELF class {klass}")
    if data not in (1, 2):
        raise ElfError(f"unsupported ELF data encoding {data}")
    is64 = klass == 2
    endian = "<" if data == 1 else ">"
    if is64:
        raw = src.read(16, 48)
        _t, _m, _v, _e, phoff, shoff, _f, _eh, phentsize, phnum, shentsize, shnum, _ = struct.unpack(
            endian + "HHIQQQIHHHHHH", raw
        )
        min_ph, min_sh = 56, 64
    else:
        raw = src.read(16, 36)
        _t, _m, _v, _e, phoff, shoff, _f, _eh, phentsize, phnum, shentsize, shnum, _ = struct.unpack(
            endian + "HHIIIIIHHHHHH", raw
        )
        min_ph, min_sh = 32, 40
    if phnum and phentsize < min_ph:
        raise ElfError(f"program header entry size {phentsize} too small")
    if shnum and shentsize < min_sh:
        raise ElfError(f"section header entry size {shentsize} too small")
    header = _Header(is64, endian, phoff, phentsize, phnum, shoff, shentsize, shnum)
    if phnum == PN_XNUM or (shnum == 0 and shoff):
        # Extended numbering: the real counts live in section header 0 (sh_info / sh_size).
        if shoff == 0 or shentsize < min_sh:
            raise ElfError("extended header numbering without a section header 0")
        sec0 = _section(src, header, 0)
        if phnum == PN_XNUM:
            phnum = sec0[3]  # sh_info
        if shnum == 0:
            shnum = sec0[2]  # sh_size
        header = _Header(is64, endian, phoff, phentsize, phnum, shoff, shentsize, shnum)
    return header


def _section(src: _Source, h: _Header, index: int) -> tuple[int, int, int, int, int]:
    """(sh_type, sh_offset, sh_size, sh_info, sh_addralign) of section ``index``."""
    base = h.shoff + index * h.shentsize
    if h.is64:
        _n, sh_type, _fl, _a, off, size, _l, info, align, _es = struct.unpack(
            h.endian + "IIQQQQIIQQ", src.read(base, 64)
        )
    else:
        _n, sh_type, _fl, _a, off, size, _l, info, align, _es = struct.unpack(
            h.endian + "IIIIIIIIII", src.read(base, 40)
        )
    return sh_type, off, size, info, align


def _segments(src: _Source, h: _Header) -> list[tuple[int, int, int]]:
    """(offset, size, align) of PT_NOTE segments."""
    out = []
    for i in range(min(h.phnum, MAX_HEADERS)):
        base = h.phoff + i * h.phentsize
        if h.is64:
            p_type, _fl, off, _va, _pa, filesz, _ms, align = struct.unpack(
                h.endian + "IIQQQQQQ", src.read(base, 56)
            )
        else:
            p_type, off, _va, _pa, filesz, _ms, _fl, align = struct.unpack(
                h.endian + "IIIIIIII", src.read(base, 32)
            )
        if p_type == PT_NOTE:
            out.append((off, filesz, align))
    return out


def _note_sections(src: _Source, h: _Header) -> list[tuple[int, int, int]]:
    out = []
    for i in range(min(h.shnum, MAX_HEADERS)):
        sh_type, off, size, _info, align = _section(src, h, i)
        if sh_type == SHT_NOTE:
            out.append((off, size, align))
    return out


class _Budget:
    def __init__(self) -> None:
        self.bytes = MAX_NOTE_BYTES
        self.notes = MAX_NOTES

    def take_bytes(self, n: int) -> None:
        self.bytes -= n
        if self.bytes < 0:
            raise ElfError(f"note tables larger than {MAX_NOTE_BYTES} bytes")

    def take_note(self) -> None:
        self.notes -= 1
        if self.notes < 0:
            raise ElfError(f"more than {MAX_NOTES} notes")


def _find_in_notes(src: _Source, h: _Header, off: int, size: int, align: int, budget: _Budget) -> str | None:
    if size == 0:
        return None
    if off + size > src.size:
        raise ElfError(f"note area {off}+{size} beyond end of file ({src.size} bytes)")
    budget.take_bytes(size)
    blob = src.read(off, size)
    step = 8 if align == 8 else 4  # gABI: 8-byte aligned entries only in 8-aligned note segments
    pos = 0
    while pos + 12 <= len(blob):
        budget.take_note()
        namesz, descsz, ntype = struct.unpack_from(h.endian + "III", blob, pos)
        name_at = pos + 12
        desc_at = -(-(name_at + namesz) // step) * step  # offsets aligned as binutils/glibc do
        end = -(-(desc_at + descsz) // step) * step
        if desc_at + descsz > len(blob):
            raise ElfError(f"note at {off + pos} overruns its area (namesz={namesz}, descsz={descsz})")
        if ntype == NT_GNU_BUILD_ID and blob[name_at : name_at + namesz] == b"GNU\0":
            if not 1 <= descsz <= MAX_BUILD_ID_BYTES:
                raise ElfError(f"build-id note of {descsz} bytes")
            return blob[desc_at : desc_at + descsz].hex()
        if end <= pos:  # cannot happen with unsigned sizes, kept as a hard guarantee of progress
            raise ElfError("note table does not advance")
        pos = end
    return None


def read_build_id(source: bytes | bytearray | memoryview | int) -> BuildIdResult:
    """The ``NT_GNU_BUILD_ID`` of an ELF image given as bytes or a readable fd (read with ``pread``).

    Notes in ``PT_NOTE`` segments are searched first, then ``SHT_NOTE`` sections. Never raises for bad input:
    not ELF → ``not-elf``; broken structure → ``malformed``; I/O error → ``unreadable``; no note → ``absent``.
    """
    try:
        src = _Source(source)
        if src.size < 16 or src.read(0, 4) != b"\x7fELF":
            return BuildIdResult(None, "not-elf", "no ELF magic")
        h = _header(src)
        budget = _Budget()
        segments = _segments(src, h) if h.phoff and h.phnum else []
        for off, size, align in segments:
            found = _find_in_notes(src, h, off, size, align, budget)
            if found is not None:
                return BuildIdResult(found, "ok")
        sections = _note_sections(src, h) if h.shoff and h.shnum else []
        for off, size, align in sections:
            found = _find_in_notes(src, h, off, size, align, budget)
            if found is not None:
                return BuildIdResult(found, "ok")
        where = f"{len(segments)} note segment(s), {len(sections)} note section(s)"
        return BuildIdResult(None, "absent", f"no NT_GNU_BUILD_ID note ({where})")
    except (ElfError, struct.error) as exc:
        return BuildIdResult(None, "malformed", str(exc) or type(exc).__name__)
    except OSError as exc:
        return BuildIdResult(None, "unreadable", exc.strerror or str(exc))
