"""What a journal's metric files are checked against when read: a CRC-32 per block, and the record made with
them (how many values, from which example), so that bytes flipped on disk or a ``run.json`` edited to shrink,
grow or shift a metric are found rather than read as other values. Computed per flush, never per example."""

from __future__ import annotations

import zlib
from typing import Any

#: Items (8-byte values or indices) per checksummed block of a metric's files: a flipped byte spoils one
#: block (65,536 examples of one metric), reported as such; the rest is read.
CRC_BLOCK = 1 << 16


def extend_crcs(crcs: list[int], size: int, data: bytes) -> list[int]:
    """The CRC-32 of each ``CRC_BLOCK`` items of a file holding ``size`` items, once ``data`` is appended
    (the last block may be partial: its CRC is extended by the next append). Per flush, never per example."""
    crcs = list(crcs)
    view = memoryview(data)
    position = size
    while view:
        block, offset = divmod(position, CRC_BLOCK)
        take = min(CRC_BLOCK - offset, len(view) // 8)
        chunk, view = view[: take * 8], view[take * 8 :]
        if offset == 0:
            crcs.append(zlib.crc32(chunk))
        else:
            crcs[block] = zlib.crc32(chunk, crcs[block])
        position += take
    return crcs


def damaged_blocks(data: bytes | memoryview, crcs: object, size: int, covered: object) -> list[int]:
    """The blocks of a file's first ``size`` items (``data``, as read) whose CRC is not the one recorded for
    the ``covered`` items it was computed over. A block is checked only where both agree on its extent (a
    last block the record's size cuts short is not); none when no CRCs were recorded (an older journal)."""
    if not isinstance(crcs, list) or not isinstance(covered, int) or len(crcs) != -(-covered // CRC_BLOCK):
        return []
    damaged = []
    for k, expected in enumerate(crcs):
        start, end = k * CRC_BLOCK, min((k + 1) * CRC_BLOCK, covered)
        if end > size:
            break
        part = data[start * 8 : end * 8]
        if len(part) == (end - start) * 8 and zlib.crc32(part) != expected:  # a block read short is said so apart
            damaged.append(k)
    return damaged


def disagreement(size: int, dense: int | None, crcs: dict[str, Any]) -> str | None:
    """How a metric's ``run.json`` entry (``size`` values, from example ``dense`` on when dense) disagrees with
    the checksum record written with it: its values shrunk or grown, or moved to other examples (an edit),
    which would be read as other examples' values. None when they agree, or no record was kept (an older
    journal)."""
    values = crcs.get("values")
    covered = values.get("items") if isinstance(values, dict) else None
    if type(covered) is int and covered != size:
        return f"run.json says {size:,} values, its checksums were made over {covered:,}"
    first = crcs.get("first")
    if dense is not None and type(first) is int and first != dense:
        return f"run.json says its values start at example {dense:,}; they were written from example {first:,}"
    return None
