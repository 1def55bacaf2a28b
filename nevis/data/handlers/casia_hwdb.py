"""CASIA-HWDB1.1, offline isolated handwritten Chinese characters (Liu, Yin, Wang & Wang, "CASIA
Online and Offline Chinese Handwriting Databases", ICDAR 2011): 3,755 GB2312-80 level-1 Chinese
characters and 171 alphanumerics and symbols written by 300 people, about 1.17 million images.

Raw files (CASIA NLPR, md5 published by the reference): `Gnt1.1TrainPart1.zip`,
`Gnt1.1TrainPart2.zip` (official train) and `Gnt1.1Test.zip` (official test), each holding
`.gnt` files (one per writer). A `.gnt` file is a sequence of records: a 4-byte little-endian
record size (10 + width × height), the 2-byte GB2312 code of the character (high byte first),
width and height (2-byte little-endian each), then width × height grey bytes, row by row,
background 255.

Label rule: one class per distinct character code over the three archives (computed at
extraction; the reference's comment says 3,926). Class names are the decoded characters; a
code GB2312 cannot decode (the reference keeps the raw bytes then) is named `0x<code>` in hex.
Images are inverted (255 - value, background 0) as the reference does and stored as grey uint8
arrays, read from the extracted `.gnt` files one record at a time. Recipe: official train →
70/15/15 train/dev/dev_test; official test → test (`official_test()`).

Deviation: the reference numbers the classes in Python set order (which varies from run to run);
here they are sorted by character code.
"""

from __future__ import annotations

import codecs
import struct
import zipfile
from pathlib import Path

import numpy as np

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url

ARCHIVES = {
    "Gnt1.1TrainPart1.zip": "train",
    "Gnt1.1TrainPart2.zip": "train",
    "Gnt1.1Test.zip": "test",
}
_HEADER = struct.Struct("<I2sHH")  # record size, GB2312 code (2 raw bytes), width, height
_BASE_URL = "http://www.nlpr.ia.ac.cn/databases/Download/Offline/CharData/"


class GntRecord:
    """One character image of a .gnt file, read on demand (inverted: background 0)."""

    __slots__ = ("height", "offset", "path", "width")

    def __init__(self, path: Path, offset: int, width: int, height: int):
        self.path, self.offset, self.width, self.height = path, offset, width, height

    def __call__(self) -> np.ndarray:
        size = self.width * self.height
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(size)
        if len(data) != size:
            raise OSError(f"{self.path}: truncated record at offset {self.offset}")
        return 255 - np.frombuffer(data, np.uint8).reshape(self.height, self.width)


def read_gnt(path: Path) -> list[tuple[bytes, GntRecord]]:
    """(character code, record) for every record of a .gnt file, headers only."""
    records = []
    total = path.stat().st_size
    with open(path, "rb") as f:
        position = 0
        while position < total:
            header = f.read(_HEADER.size)
            if len(header) != _HEADER.size:
                raise ValueError(f"{path.name}: truncated record header at byte {position}")
            size, code, width, height = _HEADER.unpack(header)
            if size != width * height + _HEADER.size or width == 0 or height == 0:
                raise ValueError(f"{path.name}: record at byte {position} has size {size} for "
                                 f"a {width}×{height} image — not a .gnt file?")
            records.append((code, GntRecord(path, position + _HEADER.size, width, height)))
            position += size
            f.seek(position)
    return records


def class_name(code: bytes) -> str:
    try:
        return codecs.decode(code, "gb2312")
    except UnicodeDecodeError:
        return "0x" + code.hex().upper()


def build(ctx: BuildContext) -> Built:
    found: list[tuple[bytes, GntRecord, str, str]] = []
    metadata: dict[str, dict[str, int]] = {}
    for archive, group in ARCHIVES.items():
        root = ctx.extract(archive)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".gnt")
        if not files:
            raise ValueError(f"{archive}: no .gnt files in the archive — has the layout changed?")
        count = 0
        for path in files:
            name = path.relative_to(root).as_posix()
            for index, (code, record) in enumerate(read_gnt(path)):
                found.append((code, record, group, f"{archive}:{name}[{index}]"))
                count += 1
        metadata[archive] = {"gnt_files": len(files), "images": count}
    codes = sorted({code for code, *_ in found})
    label_of = {code: label for label, code in enumerate(codes)}
    items = [recipes.Item(record, label_of[code], group=group, name=name)
             for code, record, group, name in found]
    return Built([class_name(c) for c in codes], items, recipes.official_test(), channels=1,
                 metadata={"archives": metadata,
                           "undecodable_codes": sum(class_name(c).startswith("0x")
                                                    for c in codes)})


# ------------------------------------------------------------------------------------- fixture

# Five GB2312 characters (啊, 阿, 中, 文, full-width A) and one code GB2312 cannot decode.
FIXTURE_CODES = (b"\xb0\xa1", b"\xb0\xa2", b"\xd6\xd0", b"\xce\xc4", b"\xa3\xc1", b"\xff\xfe")


def _gnt(rng: np.random.Generator) -> bytes:
    """One writer's file: every fixture character once, random sizes, background 255."""
    out = bytearray()
    for code in FIXTURE_CODES:
        height, width = (int(v) for v in rng.integers(6, 13, 2))
        pixels = np.full((height, width), 255, np.uint8)
        pixels[rng.random((height, width)) < 0.3] = rng.integers(0, 200, dtype=np.uint8)
        out += _HEADER.pack(width * height + _HEADER.size, code, width, height)
        out += pixels.tobytes()
    return bytes(out)


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(1172907)
    writers = {"Gnt1.1TrainPart1.zip": range(1001, 1004), "Gnt1.1TrainPart2.zip": range(1101, 1104),
               "Gnt1.1Test.zip": range(1241, 1243)}
    for archive, ids in writers.items():
        with zipfile.ZipFile(folder / archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for writer in ids:
                zf.writestr(f"{writer}-c.gnt", _gnt(rng))


HANDLER = Handler(
    key="casia_hwdb",
    name="CASIA-HWDB1.1",
    year=2011,
    sources=(
        Url(_BASE_URL + "Gnt1.1TrainPart1.zip", md5="72bac7b6a5ce37f184f277421adfacfd"),
        Url(_BASE_URL + "Gnt1.1TrainPart2.zip", md5="a8b76e4eccfb1fd8d56c448f6a096c27"),
        Url(_BASE_URL + "Gnt1.1Test.zip", md5="e74f9a4863e73d8b80ed402452c97448"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="https://nlpr.ia.ac.cn/databases/handwriting/Offline_database.html",
    num_classes=None,
)
