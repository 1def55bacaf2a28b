"""Helpers for handlers' fixture writers: small random images and archives in real layouts.

A fixture is a miniature copy of a dataset's raw files — the same archive names, folders, file
formats and annotation files as the real download, with a few generated images per class — so
that tests exercise each handler's real parsing code. Images are random noise with a random
rectangle, so no two are identical (deduplication would otherwise remove them).

Archives are written with the standard library (zip, tar) or libarchive (Unix `compress`), except
RAR, which no library writes: `write_rar` is a minimal writer of stored (uncompressed) RAR 4
archives; libarchive reads them as it reads the real, compressed ones.
"""

from __future__ import annotations

import io
import os
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image


def random_image(
    rng: np.random.Generator, size: tuple[int, int] = (24, 32), mode: str = "RGB"
) -> Image.Image:
    """A random (height, width) image in PIL `mode` ("RGB", "L", "RGBA", "P", …)."""
    h, w = size
    channels = {"L": 1, "RGB": 3, "RGBA": 4}.get(mode, 3)
    array = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    y, x = int(rng.integers(0, max(1, h // 2))), int(rng.integers(0, max(1, w // 2)))
    array[y : y + h // 3 + 1, x : x + w // 3 + 1] = rng.integers(0, 256, channels, dtype=np.uint8)
    pil = Image.fromarray(array[:, :, 0] if channels == 1 else array, "L" if channels == 1
                          else ("RGBA" if channels == 4 else "RGB"))
    return pil if pil.mode == mode else pil.convert(mode)


def image_bytes(
    rng: np.random.Generator,
    fmt: str = "JPEG",
    size: tuple[int, int] = (24, 32),
    mode: str = "RGB",
) -> bytes:
    """A random image encoded in `fmt` (any format Pillow writes: JPEG, PNG, PPM, PGM, BMP…)."""
    buffer = io.BytesIO()
    pil_format = {"PGM": "PPM", "PBM": "PPM"}.get(fmt.upper(), fmt.upper())
    random_image(rng, size, mode).save(buffer, format=pil_format)
    return buffer.getvalue()


def write_zip(path: str | os.PathLike, members: Mapping[str, bytes | str]) -> Path:
    """A zip archive with the given member names (folders are implied by the names)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data.encode() if isinstance(data, str) else data)
    return path


def write_tar(path: str | os.PathLike, members: Mapping[str, bytes | str]) -> Path:
    """A tar archive; compression follows the name (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz,
    .tar.Z/.taz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".tar.Z") or path.name.lower().endswith(".taz"):
        plain = write_tar(path.with_name(path.name + ".tmp.tar"), members)
        path.write_bytes(compress_z(plain.read_bytes()))
        plain.unlink()
        return path
    name = path.name.lower()
    mode = "w"
    if name.endswith((".gz", ".tgz")):
        mode = "w:gz"
    elif name.endswith((".bz2", ".tbz2")):
        mode = "w:bz2"
    elif name.endswith((".xz", ".txz")):
        mode = "w:xz"
    with tarfile.open(path, mode) as tf:
        for member, data in members.items():
            raw = data.encode() if isinstance(data, str) else data
            info = tarfile.TarInfo(member)
            info.size = len(raw)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(raw))
    return path


def compress_z(data: bytes) -> bytes:
    """`data` as a Unix `compress` (.Z, LZW) stream, written by libarchive's "compress" filter
    (the format of `compress`, read by `uncompress` and `gzip -d`)."""
    from nevis.data.archives import libarchive_module

    libarchive = libarchive_module("writing a Unix-compress (.Z) fixture")
    chunks: list[bytes] = []

    def collect(chunk: bytes) -> int:
        chunks.append(bytes(chunk))
        return len(chunk)

    with libarchive.custom_writer(collect, "raw", filter_name="compress") as writer:
        writer.add_file_from_memory("data", len(data), data)
    return b"".join(chunks)


# RAR 1.5–4.x (rarlab's technote, "RAR version 4.x - File format description"): the marker
# "Rar!\x1a\x07\x00", then blocks of HEAD_CRC (uint16: low half of the CRC32 of the rest of the
# header), HEAD_TYPE (uint8: 0x73 archive, 0x74 file, 0x7b end), HEAD_FLAGS (uint16), HEAD_SIZE
# (uint16, the whole header) and type-specific fields; a file header's data follows it.
RAR4_MARKER = b"Rar!\x1a\x07\x00"
_RAR_FILE = struct.Struct("<IIBIIBBHI")  # packed size, unpacked size, host OS, data CRC32,
#                                          DOS time, version needed, method, name size, attributes
_RAR_STORED = 0x30  # method 0x30 "store"; 0x31..0x35 are compression levels
_RAR_LONG_BLOCK, _RAR_UNICODE_NAME = 0x8000, 0x0200


def _rar_block(kind: int, flags: int, body: bytes) -> bytes:
    head = struct.pack("<BHH", kind, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head


def write_rar(path: str | os.PathLike, members: Mapping[str, bytes | str]) -> Path:
    """A RAR 4 archive with every member stored (no compression), names written as WinRAR on
    Windows writes them (backslash separators; folders implied by the names).

    RAR 4 rather than RAR 5: TID2008 (2008) and TID2013 (2013) were published before WinRAR
    made RAR 5 its default format (5.50, 2017); AnimalWeb's (2019) is unverified. Names are
    written as given, so a test can craft a hostile one ("../x", "/x").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dos_time = ((2008 - 1980) << 25) | (1 << 21) | (1 << 16)  # 2008-01-01 00:00
    out = bytearray(RAR4_MARKER)
    out += _rar_block(0x73, 0, bytes(6))  # archive header: two reserved fields
    for name, data in members.items():
        raw = data.encode() if isinstance(data, str) else data
        windows_name = name.replace("/", "\\")
        flags = _RAR_LONG_BLOCK
        if windows_name.isascii():
            encoded = windows_name.encode("ascii")
        else:  # a Unicode name with no ASCII part before a zero byte: UTF-8 as a whole
            encoded, flags = windows_name.encode("utf-8"), flags | _RAR_UNICODE_NAME
        body = _RAR_FILE.pack(len(raw), len(raw), 2, zlib.crc32(raw), dos_time, 20,
                              _RAR_STORED, len(encoded), 0x20) + encoded
        out += _rar_block(0x74, flags, body) + raw
    out += _rar_block(0x7B, 0x4000, b"")  # end of archive
    path.write_bytes(bytes(out))
    return path
