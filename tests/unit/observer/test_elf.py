"""GNU build-id extraction: agrees with pyelftools and ``readelf -n``; hostile input gives an error value."""

from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.observer.elfgen import Note, build_id_note, make_elf
from zastava.observer.elf import MAX_NOTE_BYTES, read_build_id


def _pyelftools_build_id(data: bytes) -> str | None:
    """Sections first (as readelf), then segments."""
    elf = ELFFile(io.BytesIO(data))
    for section in elf.iter_sections():
        if section.header.sh_type == "SHT_NOTE":
            for note in section.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                    return str(note["n_desc"])
    for segment in elf.iter_segments():
        if segment.header.p_type == "PT_NOTE":
            for note in segment.iter_notes():
                if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                    return str(note["n_desc"])
    return None


def _host_elf_files() -> list[Path]:
    """Every regular ELF file in /usr/bin and the top level of the multiarch library directories."""
    candidates: list[Path] = []
    for directory in (Path("/usr/bin"), Path("/usr/lib"), Path("/usr/lib/x86_64-linux-gnu")):
        if directory.is_dir():
            candidates.extend(sorted(directory.iterdir()))
    out = []
    for path in candidates:
        try:
            if not path.is_file() or path.is_symlink():
                continue
            with path.open("rb") as handle:
                if handle.read(4) == b"\x7fELF":
                    out.append(path)
        except OSError:
            continue
    return out


def _readelf_build_ids(files: list[Path]) -> dict[str, str | None]:
    result: dict[str, str | None] = {str(f): None for f in files}
    for start in range(0, len(files), 200):
        batch = [str(f) for f in files[start : start + 200]]
        out = subprocess.run(
            ["readelf", "-n", "-W", *batch], capture_output=True, text=True, check=False
        ).stdout
        current = batch[0] if len(batch) == 1 else None
        for line in out.splitlines():
            if line.startswith("File: "):
                current = line[6:].strip()
            match = re.search(r"Build ID: ([0-9a-f]+)", line)
            if match and current is not None and result.get(current) is None:
                result[current] = match.group(1)
    return result


@pytest.mark.skipif(shutil.which("readelf") is None, reason="prerequisite missing: readelf (binutils)")
def test_agrees_with_pyelftools_and_readelf_on_host_binaries() -> None:
    files = _host_elf_files()
    assert len(files) > 100, "expected a populated /usr/bin and /usr/lib"
    readelf = _readelf_build_ids(files)
    disagreements = []
    with_id = 0
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            ours = read_build_id(fd)
        finally:
            os.close(fd)
        data = path.read_bytes()
        try:
            reference = _pyelftools_build_id(data)
        except (ELFError, struct.error):
            reference = None
        if ours.build_id is not None:
            with_id += 1
        if not (ours.build_id == reference == readelf[str(path)]):
            disagreements.append((str(path), ours, reference, readelf[str(path)]))
        if ours.build_id is None:
            assert ours.status in ("absent", "malformed"), (path, ours)
        assert read_build_id(data) == ours  # bytes and fd give the same answer
    assert not disagreements, disagreements[:5]
    assert with_id > 100


@pytest.mark.parametrize("is64", [True, False])
@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize(("segment", "section"), [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("align", [4, 8])
def test_synthetic_layouts(is64: bool, little: bool, segment: bool, section: bool, align: int) -> None:
    desc = bytes(range(7, 27))
    data = make_elf(
        [Note(b"GNU\0", 5, b"\x01\x02\x03"), Note(b"Other\0", 3, b"zz"), build_id_note(desc)],
        is64=is64,
        little=little,
        segment=segment,
        section=section,
        align=align,
    )
    result = read_build_id(data)
    assert result.status == "ok"
    assert result.build_id == desc.hex()
    if align == 4:  # pyelftools reads 8-aligned notes only in ELF64 segments
        assert _pyelftools_build_id(data) == desc.hex()


def test_absent_and_not_elf() -> None:
    result = read_build_id(make_elf([Note(b"GNU\0", 1, b"\0" * 16)]))
    assert result.status == "absent" and result.build_id is None
    assert "no NT_GNU_BUILD_ID" in result.detail
    assert read_build_id(b"#!/bin/sh\necho hi\n").status == "not-elf"
    assert read_build_id(b"").status == "not-elf"


def test_wrong_class_and_encoding() -> None:
    good = bytearray(make_elf([build_id_note(b"\xaa" * 20)]))
    bad_class = bytes(good[:4]) + b"\x07" + bytes(good[5:])
    assert read_build_id(bad_class).status == "malformed"
    bad_data = bytes(good[:5]) + b"\x09" + bytes(good[6:])
    assert read_build_id(bad_data).status == "malformed"


def test_truncated_at_every_length() -> None:
    data = make_elf([build_id_note(b"\x11" * 20)], segment=True, section=True)
    for length in range(len(data)):
        result = read_build_id(data[:length])
        assert result.status in ("not-elf", "malformed", "absent", "ok")
        if result.ok:
            assert result.build_id == "11" * 20


def test_huge_note_sizes_are_refused() -> None:
    e = "<"
    table = struct.pack(e + "III", 4, 0xFFFFFFF0, 3) + b"GNU\0"
    data = bytearray(make_elf([build_id_note(b"\x01" * 20)], section=False))
    # overwrite the first note header with a descsz far beyond the segment
    start = data.index(struct.pack(e + "III", 4, 20, 3))
    data[start : start + len(table)] = table
    result = read_build_id(bytes(data))
    assert result.status == "malformed" and "overruns" in result.detail


def test_build_id_size_limits() -> None:
    assert read_build_id(make_elf([build_id_note(b"")])).status == "malformed"
    assert read_build_id(make_elf([build_id_note(b"\x01" * 65)])).status == "malformed"
    assert read_build_id(make_elf([build_id_note(b"\x01" * 64)])).build_id == "01" * 64


def test_note_area_beyond_budget_is_refused() -> None:
    data = bytearray(make_elf([build_id_note(b"\x01" * 20)], section=False))
    ph = 64
    p_type, p_flags, off, va, pa, _filesz, memsz, align = struct.unpack_from("<IIQQQQQQ", data, ph)
    struct.pack_into("<IIQQQQQQ", data, ph, p_type, p_flags, off, va, pa, MAX_NOTE_BYTES * 4, memsz, align)
    data += b"\0" * (MAX_NOTE_BYTES * 4)
    result = read_build_id(bytes(data))
    assert result.status == "malformed" and "larger than" in result.detail


def test_many_program_headers_are_bounded() -> None:
    """e_phnum = PN_XNUM with section 0 claiming 2**32-1 program headers: bounded work, error value."""
    data = bytearray(make_elf([build_id_note(b"\x02" * 20)], segment=True, section=True))
    struct.pack_into("<H", data, 56, 0xFFFF)  # e_phnum
    shoff = struct.unpack_from("<Q", data, 40)[0]
    struct.pack_into("<I", data, shoff + 44, 0xFFFFFFFF)  # sh_info of section 0
    started = time.perf_counter()
    result = read_build_id(bytes(data))
    assert time.perf_counter() - started < 5
    assert result.status in ("malformed", "ok")


@pytest.mark.skipif(shutil.which("gcc") is None, reason="prerequisite missing: gcc")
def test_gcc_binaries_with_and_without_build_id(tmp_path: Path) -> None:
    source = tmp_path / "p.c"
    source.write_text("int main(void) { return 0; }\n")
    cases = {"none": "--build-id=none", "md5": "--build-id=md5", "sha1": "--build-id=sha1"}
    for name, flag in cases.items():
        out = tmp_path / name
        subprocess.run(["gcc", "-O0", f"-Wl,{flag}", "-o", str(out), str(source)], check=True)
        result = read_build_id(out.read_bytes())
        if name == "none":
            assert result.status == "absent" and result.build_id is None
        else:
            assert result.build_id == _pyelftools_build_id(out.read_bytes())
            assert result.build_id is not None and len(result.build_id) == (32 if name == "md5" else 40)


# -------------------------------------------------------------------------------------------- fuzzing

_SEED = make_elf([Note(b"GNU\0", 5, b"\x01\x02\x03\x04"), build_id_note(b"\x5a" * 20)])
_SEED32BE = make_elf([build_id_note(b"\x5b" * 16)], is64=False, little=False)


@settings(max_examples=400, deadline=1000, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from([_SEED, _SEED32BE]),
    patches=st.lists(
        st.tuples(st.integers(0, len(_SEED) - 1), st.binary(min_size=1, max_size=8)), max_size=6
    ),
    cut=st.integers(0, len(_SEED)),
)
def test_fuzzed_headers_and_note_tables(seed: bytes, patches: list[tuple[int, bytes]], cut: int) -> None:
    data = bytearray(seed)
    for offset, blob in patches:
        offset %= len(data)
        data[offset : offset + len(blob)] = blob
    data = data[: max(cut, 16)]
    started = time.perf_counter()
    result = read_build_id(bytes(data))  # must not raise
    assert time.perf_counter() - started < 0.5
    assert result.status in ("ok", "absent", "not-elf", "malformed")
    if result.ok:
        assert result.build_id is not None and re.fullmatch(r"[0-9a-f]{2,128}", result.build_id)


@settings(max_examples=200, deadline=1000)
@given(st.binary(max_size=4096))
def test_random_bytes_with_elf_magic(blob: bytes) -> None:
    result = read_build_id(b"\x7fELF" + blob)
    assert result.status in ("ok", "absent", "malformed", "not-elf")
