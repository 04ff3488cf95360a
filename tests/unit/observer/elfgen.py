"""Tiny ELF image writer for tests: ELF32/ELF64, either byte order, notes in a PT_NOTE segment and/or a
SHT_NOTE section. The images are well-formed enough for pyelftools and ``readelf -n`` to read their notes."""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass
class Note:
    name: bytes
    type: int
    desc: bytes


def note_table(notes: list[Note], endian: str, align: int = 4) -> bytes:
    out = bytearray()
    for note in notes:
        out += struct.pack(endian + "III", len(note.name), len(note.desc), note.type)
        out += note.name
        while len(out) % align:
            out += b"\0"
        out += note.desc
        while len(out) % align:
            out += b"\0"
    return bytes(out)


def build_id_note(desc: bytes) -> Note:
    return Note(b"GNU\0", 3, desc)


def make_elf(
    notes: list[Note],
    *,
    is64: bool = True,
    little: bool = True,
    segment: bool = True,
    section: bool = True,
    align: int = 4,
) -> bytes:
    e = "<" if little else ">"
    ehsize = 64 if is64 else 52
    phentsize = 56 if is64 else 32
    shentsize = 64 if is64 else 40
    table = note_table(notes, e, align)
    shstrtab = b"\0.note.gnu.build-id\0.shstrtab\0"
    phnum = 1 if segment else 0
    phoff = ehsize if segment else 0
    notes_off = ehsize + phnum * phentsize
    notes_off += (-notes_off) % 8
    strtab_off = notes_off + len(table)
    shoff = strtab_off + len(shstrtab)
    shoff += (-shoff) % 8
    shnum = 3 if section else 0
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1, 0]) + b"\0" * 8
    if is64:
        header = ident + struct.pack(
            e + "HHIQQQIHHHHHH",
            2, 62 if little else 43, 1, 0, phoff, shoff if section else 0, 0,
            ehsize, phentsize, phnum, shentsize, shnum, 2 if section else 0,
        )  # fmt: skip
    else:
        header = ident + struct.pack(
            e + "HHIIIIIHHHHHH",
            2, 3 if little else 8, 1, 0, phoff, shoff if section else 0, 0,
            ehsize, phentsize, phnum, shentsize, shnum, 2 if section else 0,
        )  # fmt: skip
    out = bytearray(header)
    if segment:
        if is64:
            out += struct.pack(e + "IIQQQQQQ", 4, 4, notes_off, 0, 0, len(table), len(table), align)
        else:
            out += struct.pack(e + "IIIIIIII", 4, notes_off, 0, 0, len(table), len(table), 4, align)
    out += b"\0" * (notes_off - len(out))
    out += table
    out += shstrtab
    out += b"\0" * (shoff - len(out))
    if section:
        name_note, name_str = 1, shstrtab.index(b".shstrtab")
        if is64:
            out += b"\0" * 64
            out += struct.pack(e + "IIQQQQIIQQ", name_note, 7, 2, 0, notes_off, len(table), 0, 0, align, 0)
            out += struct.pack(e + "IIQQQQIIQQ", name_str, 3, 0, 0, strtab_off, len(shstrtab), 0, 0, 1, 0)
        else:
            out += b"\0" * 40
            out += struct.pack(e + "IIIIIIIIII", name_note, 7, 2, 0, notes_off, len(table), 0, 0, align, 0)
            out += struct.pack(e + "IIIIIIIIII", name_str, 3, 0, 0, strtab_off, len(shstrtab), 0, 0, 1, 0)
    return bytes(out)
