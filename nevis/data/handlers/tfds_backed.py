"""NEVIS'22 datasets that the reference reads from TensorFlow Datasets, converted without TF.

A `TfdsHandler` finds an already-prepared TFDS copy of its dataset — in `<mirror>/tfds/`, then
in `--tfds_data_dir` (default: `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`), laid out as TFDS
lays it out: `<data_dir>/<name>/<config>/<version>/` — and reads its records directly:

- array_record shards through `array_record`'s data source (what TFDS's `as_data_source` uses);
- TFRecord shards (TFDS's default format, what labs' shared data directories hold) with the small
  framing reader below (uint64 length, uint32 masked CRC, data, uint32 CRC; CRCs not checked).

Records are parsed with the `tf.train.Example` proto that TFDS bundles, so TensorFlow is never
imported. Record order is the shard order of the split's file instructions, which is the order
TFDS index slicing (`train[:70%]`) uses. Feature keys in the proto are flat: "image", "label",
"labels", "attributes/Smiling".

When no prepared copy exists, TFDS's own builder may prepare one (in array_record format) if
downloads are allowed and TensorFlow is installed (the `tfds` extra); otherwise the dataset is
reported as needing the extra. ImageNet's files are never downloaded by TFDS: they go in the
manual folder.

Split recipes follow the reference (`shared/references/nevis22.md` §5): index ranges of TFDS
splits (`int(n * fraction)`, no shuffling first) or bespoke rules (COIL-100 view bins, smallNORB
instances, DomainNet's held-out sketch domain). Items are produced lazily: labels and splits are
read block by block when the recipe iterates, images are re-read when they are written, so
memory stays small for ImageNet. The reference does not deduplicate TFDS datasets; neither do we.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import datetime
import importlib.util
import json
import os
import re
import shutil
import struct
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nevis.data import recipes
from nevis.data.handlers.base import BuildContext, Built
from nevis.data.sources import NeedsExtra, NeedsManualDownload, PrepareError
from nevis.tasks import TaskKind, canonical_key

TFDS_EXTRA = "pip install -e '.[tfds]'"
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}  # fixture images carry these
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_BLOCK = 512  # records read at once when labels are scanned


def _tfds():
    import tensorflow_datasets as tfds

    return tfds


# ------------------------------------------------------------------------------- TFRecord framing


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def write_tfrecord(path: str | os.PathLike, records: Sequence[bytes]) -> None:
    """Writes `records` in TFRecord framing (with the real masked CRC-32C checksums)."""
    with open(path, "wb") as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(header + struct.pack("<I", masked_crc32c(header)))
            f.write(data + struct.pack("<I", masked_crc32c(data)))


def tfrecord_index(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(data offsets, data lengths) of every record of a TFRecord file, reading headers only."""
    offsets, lengths = [], []
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        position = 0
        while position < size:
            header = f.read(12)
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header at byte {position}")
            (length,) = struct.unpack("<Q", header[:8])
            offsets.append(position + 12)
            lengths.append(length)
            position += 12 + length + 4
            if position > size:
                raise ValueError(f"{path}: truncated record at byte {offsets[-1]}")
            f.seek(position)
    return np.asarray(offsets, np.int64), np.asarray(lengths, np.int64)


# -------------------------------------------------------------------------------- record sources


class ArrayRecords:
    """Raw records of one TFDS split in array_record shards (thread-safe random access).

    Single reads go through a small cache of record blocks: one array_record read costs about
    as much as reading a block of neighbours at once, and items are written in record order.
    """

    format = "array_record"
    block = 32
    cached_blocks = 16

    def __init__(self, instructions: Sequence[Any]):
        from array_record.python.array_record_data_source import ArrayRecordDataSource

        self._n = sum(int(fi.take) for fi in instructions)
        self._source = ArrayRecordDataSource(list(instructions)) if self._n else None
        self._blocks: collections.OrderedDict[int, list[bytes]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def read(self, index: int) -> bytes:
        if not 0 <= index < self._n:
            raise IndexError(f"record {index} out of range ({self._n} records)")
        number, offset = divmod(index, self.block)
        with self._lock:
            records = self._blocks.get(number)
            if records is not None:
                self._blocks.move_to_end(number)
                return records[offset]
        start = number * self.block
        records = self.read_many(range(start, min(self._n, start + self.block)))
        with self._lock:
            self._blocks[number] = records
            while len(self._blocks) > self.cached_blocks:
                self._blocks.popitem(last=False)
        return records[offset]

    def read_many(self, indices: Sequence[int]) -> list[bytes]:
        return list(self._source.__getitems__(list(indices))) if indices else []


class TfRecords:
    """Raw records of one TFDS split in TFRecord shards, by index (shards indexed lazily)."""

    format = "tfrecord"

    def __init__(self, instructions: Sequence[Any]):
        self._files = [str(fi.filename) for fi in instructions]
        self._skip = [int(fi.skip) for fi in instructions]
        self._take = [int(fi.take) for fi in instructions]
        self._expected = [getattr(fi, "examples_in_shard", None) for fi in instructions]
        self._starts = np.cumsum([0, *self._take]).tolist()
        self._index: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._starts[-1]

    def _shard(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            if shard not in self._index:
                offsets, lengths = tfrecord_index(self._files[shard])
                expected = self._expected[shard]
                if expected is not None and expected != len(offsets):
                    raise ValueError(f"{self._files[shard]} holds {len(offsets)} records; "
                                     f"dataset_info.json says {expected}")
                self._index[shard] = offsets, lengths
            return self._index[shard]

    def read(self, index: int) -> bytes:
        return self.read_many([index])[0]

    def read_many(self, indices: Sequence[int]) -> list[bytes]:
        out, handle, shard_open = [], None, -1
        try:
            for index in indices:
                if not 0 <= index < len(self):
                    raise IndexError(f"record {index} out of range ({len(self)} records)")
                shard = bisect.bisect_right(self._starts, index) - 1
                offsets, lengths = self._shard(shard)
                if shard != shard_open:
                    if handle is not None:
                        handle.close()
                    handle, shard_open = open(self._files[shard], "rb"), shard
                position = self._skip[shard] + index - self._starts[shard]
                out.append(os.pread(handle.fileno(), int(lengths[position]),
                                    int(offsets[position])))
        finally:
            if handle is not None:
                handle.close()
        return out


def _features(raw: bytes):
    """The feature map of one serialized tf.train.Example."""
    from tensorflow_datasets.proto import tf_example_pb2

    return tf_example_pb2.Example.FromString(raw).features.feature


def _values(features, key: str) -> list:
    if key not in features:  # (indexing a proto map would insert the key)
        raise KeyError(f"the records have no feature {key!r} (they have {sorted(features)})")
    feature = features[key]
    kind = feature.WhichOneof("kind")
    return [] if kind is None else list(getattr(feature, kind).value)


def _int(features, key: str) -> int:
    values = _values(features, key)
    if len(values) != 1:
        raise ValueError(f"feature {key!r} holds {len(values)} values; expected one")
    return int(values[0])


# ------------------------------------------------------------------------------------ label specs


def _class_label(feature):
    """The ClassLabel of a ClassLabel feature or a Sequence of ClassLabel."""
    feature = getattr(feature, "feature", feature)
    if not hasattr(feature, "names"):
        raise PrepareError(f"feature {feature!r} is not a ClassLabel")
    return feature


def _copy_feature(feature):
    """A copy of a real TFDS feature for a fixture, keeping ClassLabel names."""
    tfds = _tfds()
    inner = getattr(feature, "feature", None)
    if isinstance(feature, tfds.features.ClassLabel):
        return tfds.features.ClassLabel(names=list(feature.names))
    if isinstance(feature, tfds.features.Sequence) and isinstance(inner, tfds.features.ClassLabel):
        return tfds.features.Sequence(tfds.features.ClassLabel(names=list(inner.names)))
    return tfds.features.FeatureConnector.from_json(feature.to_json())


@dataclasses.dataclass(frozen=True)
class Label:
    """Single label: a ClassLabel feature (e.g. "label", "object_id", "label_category")."""

    key: str = "label"
    multi = False

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def read(self, features) -> int:
        return _int(features, self.key)

    def class_names(self, info_features) -> list[str]:
        return list(_class_label(info_features[self.key]).names)

    def fixture_value(self, seed: int, num_classes: int) -> dict[str, Any]:
        return {self.key: seed % num_classes}


@dataclasses.dataclass(frozen=True)
class MultiLabel:
    """Multi-label: a Sequence of ClassLabel (VOC's "labels": the classes of all objects)."""

    key: str = "labels"
    multi = True

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,)

    def read(self, features) -> list[int]:
        values = _values(features, self.key) if self.key in features else []
        return sorted({int(v) for v in values})

    def class_names(self, info_features) -> list[str]:
        return list(_class_label(info_features[self.key]).names)

    def fixture_value(self, seed: int, num_classes: int) -> dict[str, Any]:
        return {self.key: sorted({seed % num_classes, (3 * seed + 1) % num_classes})}


@dataclasses.dataclass(frozen=True)
class Attributes:
    """Multi-label from boolean attributes (CelebA's "attributes/<name>"), in `names` order."""

    names: tuple[str, ...]
    prefix: str = "attributes"
    multi = True

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.prefix,)

    def read(self, features) -> list[int]:
        return [i for i, name in enumerate(self.names)
                if _int(features, f"{self.prefix}/{name}")]

    def class_names(self, info_features) -> list[str]:
        return list(self.names)

    def fixture_value(self, seed: int, num_classes: int) -> dict[str, Any]:
        return {self.prefix: {name: bool((seed >> (i % 5)) & 1 or i == seed % len(self.names))
                              for i, name in enumerate(self.names)}}


LabelSpec = Label | MultiLabel | Attributes


def fixture_labels(spec: LabelSpec, seed: int, num_classes: int) -> int | list[int]:
    """The label(s) a fixture record with this seed carries (tests compare against it)."""
    value = spec.fixture_value(seed, num_classes)
    if isinstance(spec, Attributes):
        return [i for i, name in enumerate(spec.names) if value[spec.prefix][name]]
    return value[spec.key]


# ---------------------------------------------------------------------------------- split recipes

Sizes = Callable[[str | None, str], int]  # (TFDS name or None = the handler's, TFDS split) -> n


@dataclasses.dataclass(frozen=True)
class Slice:
    """Records [start, end) of one TFDS split, going to our `split`.

    split None: the recipe's `route` decides per record (COIL-100, smallNORB), or, without a
    route, the items carry `group` and a group recipe splits them (`tfds:NAME` datasets).
    """

    tfds_split: str
    start: int
    end: int
    split: str | None
    dataset: str | None = None  # TFDS name; None = the handler's
    group: str = "all"


@dataclasses.dataclass(frozen=True)
class SplitRecipe:
    """How TFDS splits become train/dev/dev_test/test.

    reads: the (TFDS name or None, TFDS split) pairs read, in order.
    plan: sizes -> slices (index ranges).
    route: record features -> our split, for slices whose split is None.
    route_keys / fixture_values: the features `route` reads and what a fixture writes in them
        for (dataset, TFDS split, record index).
    fixture_sizes: records per (dataset, TFDS split) in fixtures (default 43/12/10).
    items_recipe: the `recipes` recipe applied to the items (explicit for every NEVIS recipe).
    """

    description: str
    reads: tuple[tuple[str | None, str], ...]
    plan: Callable[[Sizes], list[Slice]]
    route: Callable[[Any], str] | None = None
    route_keys: tuple[str, ...] = ()
    fixture_values: Callable[[str | None, str, int], dict[str, Any]] | None = None
    fixture_sizes: Mapping[tuple[str | None, str], int] = dataclasses.field(default_factory=dict)
    items_recipe: Callable[[], recipes.Recipe] = recipes.explicit
    optional_splits: bool = False  # a split the copy lacks counts as empty (else an error)


# Train sizes whose fractions are not whole numbers, so that int() truncation is exercised.
_DEFAULT_FIXTURE_SIZES = {"train": 43, "validation": 12, "test": 10}


def _pct(x: float) -> str:
    return f"{100 * x:g}%"


def train_fractions(train: float = 0.7, dev: float = 0.15, test: str = "test") -> SplitRecipe:
    """TFDS train → [0, int(n·train)) train, next int(n·dev) dev, the rest dev_test; `test` → test.

    MNIST & co. (70/15/15, test = TFDS test) and ImageNet (90/5/5, test = TFDS validation).
    """

    def plan(size: Sizes) -> list[Slice]:
        n = size(None, "train")
        a = int(n * train)
        b = a + int(n * dev)
        return [Slice("train", 0, a, "train"), Slice("train", a, b, "dev"),
                Slice("train", b, n, "dev_test"), Slice(test, 0, size(None, test), "test")]

    return SplitRecipe(
        f"TFDS train → first {_pct(train)} train / next {_pct(dev)} dev / rest dev_test "
        f"(index order); TFDS {test} → test",
        ((None, "train"), (None, test)), plan)


def train_validation_test(train: float = 0.8) -> SplitRecipe:
    """TFDS train → [0, int(n·train)) train, rest dev; validation → dev_test; test → test."""

    def plan(size: Sizes) -> list[Slice]:
        n = size(None, "train")
        a = int(n * train)
        return [Slice("train", 0, a, "train"), Slice("train", a, n, "dev"),
                Slice("validation", 0, size(None, "validation"), "dev_test"),
                Slice("test", 0, size(None, "test"), "test")]

    return SplitRecipe(
        f"TFDS train → first {_pct(train)} train / rest dev (index order); TFDS validation → "
        "dev_test; TFDS test → test",
        ((None, "train"), (None, "validation"), (None, "test")), plan)


def validation_halves(train: float = 0.8) -> SplitRecipe:
    """VOC 2012 (no public test): train → 80/20 train/dev; validation halves → dev_test/test."""

    def plan(size: Sizes) -> list[Slice]:
        n, v = size(None, "train"), size(None, "validation")
        a, h = int(n * train), int(v * 0.5)
        return [Slice("train", 0, a, "train"), Slice("train", a, n, "dev"),
                Slice("validation", 0, h, "dev_test"), Slice("validation", h, v, "test")]

    return SplitRecipe(
        f"TFDS train → first {_pct(train)} train / rest dev (index order); TFDS validation → "
        "first half dev_test / second half test",
        ((None, "train"), (None, "validation")), plan,
        fixture_sizes={(None, "train"): 43, (None, "validation"): 13})


COIL100_BINS = {"train": (70, 71, 0, 1, 2), "dev": (16, 17, 18, 19, 20),
                "dev_test": (50, 51, 52, 53, 54)}


def view_bins(bins: Mapping[str, Sequence[int]] = COIL100_BINS, num_bins: int = 72,
              key: str = "angle_label") -> SplitRecipe:
    """COIL-100: the view-angle bin (5° steps) decides the split; other bins → test."""
    split_of = dict.fromkeys(range(num_bins), "test")
    for split, chosen in bins.items():
        split_of.update(dict.fromkeys(chosen, split))

    def plan(size: Sizes) -> list[Slice]:
        return [Slice("train", 0, size(None, "train"), None)]

    def route(features) -> str:
        return split_of[_int(features, key)]

    return SplitRecipe(
        "TFDS train (the only split) by view-angle bin: train "
        f"{list(bins['train'])}, dev {list(bins['dev'])}, dev_test {list(bins['dev_test'])}, "
        f"test the other {num_bins - sum(len(b) for b in bins.values())} bins",
        ((None, "train"),), plan, route, (key,),
        fixture_values=lambda dataset, split, i: {key: i % num_bins},
        fixture_sizes={(None, "train"): 2 * num_bins})


SMALLNORB_INSTANCES = {"train": (7, 8, 9), "dev": (4,), "dev_test": (6,)}


def instances(by_split: Mapping[str, Sequence[int]] = SMALLNORB_INSTANCES,
              key: str = "instance") -> SplitRecipe:
    """smallNORB: object instance of the TFDS train split decides the split; TFDS test → test."""
    split_of = {i: split for split, chosen in by_split.items() for i in chosen}
    train_ids = sorted(split_of)
    test_ids = [i for i in range(10) if i not in split_of]

    def plan(size: Sizes) -> list[Slice]:
        return [Slice("train", 0, size(None, "train"), None),
                Slice("test", 0, size(None, "test"), "test")]

    def route(features) -> str:
        instance = _int(features, key)
        if instance not in split_of:
            raise PrepareError(f"a TFDS train record has instance {instance}; the recipe "
                               f"knows instances {train_ids} only")
        return split_of[instance]

    def values(dataset, split, i) -> dict[str, Any]:
        ids = train_ids if split == "train" else test_ids
        return {key: ids[i % len(ids)]}

    return SplitRecipe(
        "TFDS train by object instance: train "
        f"{list(by_split['train'])}, dev {list(by_split['dev'])}, dev_test "
        f"{list(by_split['dev_test'])}; TFDS test → test",
        ((None, "train"), (None, "test")), plan, route, (key,), fixture_values=values,
        fixture_sizes={(None, "train"): 25, (None, "test"): 10})


DOMAINNET_TRAIN = ("real", "painting", "clipart", "quickdraw", "infograph")


def held_out_domain(base: str = "domainnet", train_domains: Sequence[str] = DOMAINNET_TRAIN,
                    test_domain: str = "sketch") -> SplitRecipe:
    """DomainNet: train = TFDS train of the training domains (in order), dev = their TFDS test;
    dev_test / test = the held-out domain's TFDS train / test."""
    names = [f"{base}/{d}" for d in train_domains]
    held = f"{base}/{test_domain}"

    def plan(size: Sizes) -> list[Slice]:
        out = [Slice("train", 0, size(d, "train"), "train", d) for d in names]
        out += [Slice("test", 0, size(d, "test"), "dev", d) for d in names]
        return out + [Slice("train", 0, size(held, "train"), "dev_test", held),
                      Slice("test", 0, size(held, "test"), "test", held)]

    reads = tuple((d, s) for s in ("train", "test") for d in names)
    sizes = {(d, s): n for d in [*names, held] for s, n in (("train", 12), ("test", 6))}
    return SplitRecipe(
        f"TFDS train of {', '.join(train_domains)} → train; their TFDS test → dev; "
        f"{test_domain} TFDS train → dev_test, TFDS test → test",
        (*reads, (held, "train"), (held, "test")), plan, fixture_sizes=sizes)


def _official_recipe() -> recipes.Recipe:
    """The stratified group recipe that fits the groups present (see `official_splits`)."""

    def recipe(items: Sequence[recipes.Item]) -> dict[str, list[recipes.Item]]:
        groups = {item.group for item in items}
        if "test" not in groups:
            return recipes.random_split()(items)
        if "val" in groups:
            return recipes.official_val_test()(items)
        return recipes.official_test()(items)

    recipe.description = "TFDS official splits (stratified)"  # type: ignore[attr-defined]
    return recipe


def official_splits() -> SplitRecipe:
    """`tfds:NAME` datasets, by the splits the prepared copy has: train + validation + test →
    train 80/20 train/dev, validation → dev_test, test → test; train + test → 70/15/15 + test;
    train alone (or without test) → 56/12/12/20. Cuts are stratified (`nevis.data.recipes`)."""

    def plan(size: Sizes) -> list[Slice]:
        n = size(None, "train")
        if not n:
            raise PrepareError("the prepared TFDS dataset has no (or an empty) train split")
        test = size(None, "test")
        if not test:
            return [Slice("train", 0, n, None)]
        val = next((s for s in ("validation", "val") if size(None, s)), None)
        out = [Slice("train", 0, n, None, group="train")]
        if val:
            out.append(Slice(val, 0, size(None, val), None, group="val"))
        return [*out, Slice("test", 0, test, None, group="test")]

    return SplitRecipe("TFDS official splits", ((None, "train"), (None, "validation"),
                                                (None, "test")), plan,
                       items_recipe=_official_recipe, optional_splits=True)


# ---------------------------------------------------------------------------- prepared TFDS data


@dataclasses.dataclass(frozen=True)
class Prepared:
    """One prepared TFDS dataset version directory."""

    tfds_name: str
    path: Path
    builder: Any  # tfds builder_from_directory

    @property
    def version(self) -> str:
        return str(self.builder.version)

    @property
    def format(self) -> str:
        return str(getattr(self.builder.info.file_format, "value", "tfrecord") or "tfrecord")

    def records(self, split: str) -> ArrayRecords | TfRecords:
        splits = self.builder.info.splits
        if split not in splits:
            raise PrepareError(f"{self.tfds_name} in {self.path} has no split {split!r} "
                               f"(it has {sorted(splits)})")
        if self.format not in ("array_record", "tfrecord"):
            raise PrepareError(f"{self.path}: unsupported TFDS file format {self.format!r} "
                               "(array_record and tfrecord are read)")
        try:
            instructions = splits[split].file_instructions
            missing = [str(fi.filename) for fi in instructions if not Path(fi.filename).is_file()]
            if missing:
                raise PrepareError(f"{self.tfds_name} in {self.path} is incomplete: "
                                   f"{len(missing)} shard(s) of split {split} are missing, e.g. "
                                   f"{missing[0]}")
            if self.format == "array_record":
                return ArrayRecords(instructions)
            return TfRecords(instructions)
        except PrepareError:
            raise
        except Exception as e:  # noqa: BLE001 - array_record / TFDS failures: a broken copy.
            raise PrepareError(f"cannot open split {split} of {self.tfds_name} in {self.path} "
                               f"({type(e).__name__}: {e})") from e


def default_tfds_data_dir() -> Path:
    return Path(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets").expanduser()


def _local_mirror(mirror: str | None) -> Path | None:
    if not mirror:
        return None
    parsed = urllib.parse.urlparse(mirror)
    if parsed.scheme in ("http", "https"):
        return None  # TFDS data is only looked up in local mirrors
    return Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else mirror)


def _data_dirs(options: Mapping[str, Any]) -> list[Path]:
    dirs = []
    mirror = _local_mirror(options.get("mirror"))
    if mirror is not None:
        dirs.append(mirror / "tfds")
    tfds_dir = options.get("tfds_data_dir")
    dirs.append(Path(tfds_dir).expanduser() if tfds_dir else default_tfds_data_dir())
    return dirs


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(p) for p in name.split("."))


def find_prepared(tfds_name: str, version: str | None, data_dirs: Sequence[Path]) -> Path | None:
    """`<data_dir>/<name>/<config>/<version>` holding dataset_info.json: the pinned version
    first, else the newest version, searching `data_dirs` in order."""
    for data_dir in data_dirs:
        base = Path(data_dir) / tfds_name
        if version and (base / version / "dataset_info.json").is_file():
            return base / version
    for data_dir in data_dirs:
        base = Path(data_dir) / tfds_name
        if not base.is_dir():
            continue
        found = [p for p in base.iterdir() if p.is_dir() and _VERSION.fullmatch(p.name)
                 and (p / "dataset_info.json").is_file()]
        if found:
            return max(found, key=lambda p: _version_key(p.name))
    return None


def open_prepared(tfds_name: str, path: Path) -> Prepared:
    try:
        builder = _tfds().builder_from_directory(str(path))
    except Exception as e:  # noqa: BLE001 - any TFDS failure means an unusable directory.
        raise PrepareError(f"cannot open the TFDS data in {path} ({type(e).__name__}: {e})") from e
    return Prepared(tfds_name, path, builder)


# ------------------------------------------------------------------------------------------ items


class RecordImage:
    """An item's image: re-reads its record when called (so items stay small)."""

    __slots__ = ("records", "index", "image_key", "where")

    def __init__(self, records, index: int, image_key: str, where: str):
        self.records, self.index, self.image_key, self.where = records, index, image_key, where

    def __call__(self) -> bytes:
        values = _values(_features(self.records.read(self.index)), self.image_key)
        if len(values) != 1:
            raise ValueError(f"{self!r}: feature {self.image_key!r} holds {len(values)} images")
        return values[0]

    def __repr__(self) -> str:
        return f"{self.where}[{self.index}]"


class TfdsItems(Sequence):
    """The items of a TFDS-backed dataset, built on demand from the records.

    Labels (and per-record splits) are parsed a block of records at a time and cached (small
    values only); images are re-read from the records when the pipeline writes them.
    """

    def __init__(self, slices: Sequence[Slice], readers: Mapping[tuple[str, str], Any],
                 names: Mapping[str | None, str], label: LabelSpec,
                 route: Callable[[Any], str] | None, image_key: str = "image"):
        self._slices = [s for s in slices if s.end > s.start]
        self._readers = readers
        self._names = names
        self._label = label
        self._route = route
        self._image_key = image_key
        self._starts = np.cumsum([0, *(s.end - s.start for s in self._slices)]).tolist()
        self._where = [f"{names[s.dataset]} {s.tfds_split}" for s in self._slices]
        self._cache: dict[tuple[int, int], tuple[list, list]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._starts[-1]

    def _reader(self, piece: Slice):
        return self._readers[(self._names[piece.dataset], piece.tfds_split)]

    def _block(self, s: int, block: int) -> tuple[list, list]:
        with self._lock:
            cached = self._cache.get((s, block))
        if cached is not None:
            return cached
        piece = self._slices[s]
        lo = piece.start + block * _BLOCK
        hi = min(piece.end, lo + _BLOCK)
        labels, splits = [], []
        for raw in self._reader(piece).read_many(range(lo, hi)):
            features = _features(raw)
            labels.append(self._label.read(features))
            splits.append(piece.split if piece.split is not None or self._route is None
                          else self._route(features))
        with self._lock:
            self._cache[(s, block)] = (labels, splits)
        return labels, splits

    def _item(self, s: int, offset: int) -> recipes.Item:
        piece = self._slices[s]
        labels, splits = self._block(s, offset // _BLOCK)
        index = piece.start + offset
        return recipes.Item(
            RecordImage(self._reader(piece), index, self._image_key, self._where[s]),
            labels[offset % _BLOCK], group=piece.group, split=splits[offset % _BLOCK])

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        k = int(k)
        if k < 0:
            k += len(self)
        if not 0 <= k < len(self):
            raise IndexError(f"item {k} out of range ({len(self)} items)")
        s = bisect.bisect_right(self._starts, k) - 1
        return self._item(s, k - self._starts[s])

    def __iter__(self) -> Iterator[recipes.Item]:
        for s, piece in enumerate(self._slices):
            for offset in range(piece.end - piece.start):
                yield self._item(s, offset)


# ---------------------------------------------------------------------------------------- handler


def _tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


@dataclasses.dataclass(frozen=True)
class TfdsHandler:
    """A NEVIS'22 dataset read from TFDS (same interface as `base.Handler`).

    tfds_name: TFDS name with config ("voc/2007"); the first dataset the recipe reads.
    tfds_version: the version TFDS 4.9.10 registers (preferred; another prepared version is
        used when it is the only one found, and recorded in the metadata).
    recipe: how TFDS splits become ours; label: how a record's label(s) are read.
    channels: 1 for grey datasets. manual_files: files TFDS needs in its manual folder.
    """

    key: str
    name: str
    year: int
    tfds_name: str
    tfds_version: str | None
    recipe: SplitRecipe
    label: LabelSpec
    homepage: str
    num_classes: int | None = None
    kind: TaskKind = TaskKind.SINGLE_LABEL
    channels: int = 3
    manual_files: tuple[str, ...] = ()
    manual_page: str = ""
    image_key: str = "image"
    catalog_source: str | None = None  # the catalog's source column, default tfds_name
    sources: tuple = ()
    max_image_side: int | None = None
    version: str = "1.0.0"
    notes: str = ""

    def __post_init__(self):
        multi = self.kind == TaskKind.MULTI_LABEL
        if multi != self.label.multi:
            raise ValueError(f"{self.key}: kind {self.kind} does not match label {self.label}")

    @property
    def source(self) -> str:
        return self.catalog_source or self.tfds_name

    @property
    def datasets(self) -> list[str]:
        """Every TFDS name the recipe reads, in order."""
        return list(dict.fromkeys(d or self.tfds_name for d, _ in self.recipe.reads))

    # ------------------------------------------------------------------------------- build

    def build(self, ctx: BuildContext) -> Built:
        options = ctx.options or {}
        prepared = {name: self._prepared(name, options) for name in self.datasets}
        names = {None: self.tfds_name, **{n: n for n in prepared}}

        def size(dataset: str | None, split: str) -> int:
            info = prepared[names[dataset]].builder.info
            if split not in info.splits and self.recipe.optional_splits:
                return 0
            if split not in info.splits:
                raise PrepareError(f"{names[dataset]} in {prepared[names[dataset]].path} has no "
                                   f"split {split!r} (it has {sorted(info.splits)})")
            return int(info.splits[split].num_examples)

        slices = [piece for piece in self.recipe.plan(size) if piece.end > piece.start]
        readers = {}
        for piece in slices:
            name = names[piece.dataset]
            if (name, piece.tfds_split) not in readers:
                readers[(name, piece.tfds_split)] = prepared[name].records(piece.tfds_split)
        main = prepared[self.tfds_name]
        info_features = main.builder.info.features
        try:
            class_names = self.label.class_names(info_features)
        except KeyError as e:
            raise PrepareError(f"{self.tfds_name} in {main.path} has no feature {e}; features: "
                               f"{sorted(info_features.keys())}") from e
        items = TfdsItems(slices, readers, names, self.label, self.recipe.route, self.image_key)
        metadata: dict[str, Any] = {
            "tfds_name": self.tfds_name,
            "tfds_version": main.version,
            "source_format": main.format,
            "tfds_splits": {
                f"{names[p.dataset]}:{p.tfds_split}[{p.start}:{p.end}]":
                    p.split or ("per record" if self.recipe.route else f"group {p.group}")
                for p in slices},
        }
        if len(prepared) > 1:
            metadata["tfds_datasets"] = {n: {"version": p.version, "source_format": p.format}
                                         for n, p in prepared.items()}
        recipe = self.recipe.items_recipe()
        if self.recipe.items_recipe is recipes.explicit:
            recipe.description = self.recipe.description  # type: ignore[attr-defined]
        return Built(class_names, items, recipe, channels=self.channels, metadata=metadata,
                     deduplicate=False)

    def _prepared(self, tfds_name: str, options: Mapping[str, Any]) -> Prepared:
        dirs = _data_dirs(options)
        path = find_prepared(tfds_name, self.tfds_version, dirs)
        if path is None:
            path = self._download(tfds_name, dirs, options)
        return open_prepared(tfds_name, path)

    def _manual_folder(self, options: Mapping[str, Any], data_dir: Path) -> Path | None:
        if not self.manual_files:
            return None
        manual = options.get("manual_dir")
        candidates = []
        if manual:
            manual = Path(manual).expanduser()
            candidates += [manual / self.key, manual / self.tfds_name, manual]
        candidates.append(data_dir / "downloads" / "manual")
        for folder in candidates:
            if all((folder / f).is_file() for f in self.manual_files):
                return folder
        where = (f"{manual}/ (or {manual}/{self.key}/)" if manual
                 else f"the folder given as --manual_dir (or {candidates[-1]}/)")
        raise NeedsManualDownload(
            f"{self.name}: TFDS prepares {self.tfds_name} only from files you download by hand: "
            f"{', '.join(self.manual_files)} from {self.manual_page or self.homepage} "
            f"(registration needed). Put them in {where} and run again; or point "
            "--tfds_data_dir at a TFDS data directory that already holds "
            f"{self.tfds_name}.")

    def _download(self, tfds_name: str, dirs: Sequence[Path], options: Mapping[str, Any]) -> Path:
        data_dir = dirs[-1]
        looked = ", ".join(str(d / tfds_name) for d in dirs)
        if not options.get("download", True):
            raise PrepareError(
                f"{tfds_name} is not prepared in {looked}, and TFDS downloads are off; point "
                "--tfds_data_dir at a TFDS data directory that holds it, or allow downloads.")
        manual = self._manual_folder(options, data_dir)
        if not _tensorflow_installed():
            raise NeedsExtra(
                f"{tfds_name} is not prepared in {looked}; preparing it needs TensorFlow to run "
                f"its TFDS builder: {TFDS_EXTRA} (or point --tfds_data_dir at a TFDS data "
                "directory that already holds it)")
        tfds = _tfds()
        try:
            builder = tfds.builder(tfds_name, data_dir=str(data_dir),
                                   file_format="array_record")
            builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=str(manual) if manual else None))
        except PrepareError:
            raise
        except Exception as e:  # noqa: BLE001 - TFDS raises many kinds; report, don't crash.
            raise PrepareError(f"TFDS could not prepare {tfds_name} in {data_dir} "
                               f"({type(e).__name__}: {e})") from e
        path = find_prepared(tfds_name, str(builder.version), [data_dir])
        if path is None:
            raise PrepareError(f"TFDS prepared {tfds_name} but {data_dir} does not hold it")
        return path

    # ------------------------------------------------------------------------------ fixture

    def fixture(self, directory: str | os.PathLike) -> Path:
        """Writes a tiny prepared TFDS copy into `<directory>/tfds/<name>/<config>/<version>/`
        (array_record, no TensorFlow); returns it (DomainNet: `<directory>/tfds/domainnet`).

        Each record's image encodes where it comes from: pixel row 0 holds the record index
        (low, high byte), the TFDS split id (`SPLIT_IDS`) and the dataset's position in
        `datasets`; labels are `fixture_labels(label, seed)` with seed = the record index plus
        100 times the split id.
        """
        root = Path(directory) / "tfds"
        written = [self._write_fixture_dataset(root, position, name)
                   for position, name in enumerate(self.datasets)]
        if len(written) == 1:
            return written[0]
        return Path(os.path.commonpath([str(p) for p in written]))

    def _fixture_features(self, tfds_name: str) -> dict[str, Any]:
        tfds = _tfds()
        real = tfds.builder(tfds_name).info.features
        features = {self.image_key: tfds.features.Image(shape=(None, None, self.channels),
                                                        encoding_format="png")}
        for key in (*self.label.keys, *self.recipe.route_keys):
            features[key] = _copy_feature(real[key])
        return features

    def _fixture_num_classes(self, features: Mapping[str, Any]) -> int:
        if isinstance(self.label, Attributes):
            return len(self.label.names)
        return len(_class_label(features[self.label.key]).names)

    def _write_fixture_dataset(self, root: Path, position: int, tfds_name: str) -> Path:
        features = self._fixture_features(tfds_name)
        num_classes = self._fixture_num_classes(features)
        version = self.tfds_version or str(_tfds().builder(tfds_name).version)
        splits: dict[str, list[dict[str, Any]]] = {}
        for dataset, split in self.recipe.reads:
            if (dataset or self.tfds_name) != tfds_name or split in splits:
                continue
            key = dataset if (dataset, split) in self.recipe.fixture_sizes else None
            n = self.recipe.fixture_sizes.get((key, split), _DEFAULT_FIXTURE_SIZES.get(split, 10))
            rows = []
            for i in range(n):
                seed = i + 100 * SPLIT_IDS.get(split, 3)
                row = {self.image_key: fixture_png(i, SPLIT_IDS.get(split, 3), position,
                                                   self.channels)}
                row.update(self.label.fixture_value(seed, num_classes))
                if self.recipe.fixture_values is not None:
                    row.update(self.recipe.fixture_values(dataset, split, i))
                rows.append(row)
            splits[split] = rows
        return write_prepared(root, tfds_name, version, features, splits)


def fixture_png(index: int, split_id: int, dataset_id: int, channels: int) -> bytes:
    """An 8×8 PNG whose first pixels encode (index % 256, index // 256, split id, dataset id)."""
    from nevis.data import images

    rng = np.random.default_rng(index + 1000 * split_id + 100_000 * dataset_id)
    pixels = rng.integers(0, 256, (8, 8, channels), dtype=np.uint8)
    pixels[0, :4, :] = np.asarray([index % 256, index // 256, split_id, dataset_id],
                                  np.uint8)[:, None]
    return images.encode_png(pixels)


def fixture_origin(image: bytes) -> tuple[int, int, int]:
    """(record index, split id, dataset id) of a fixture image (see `fixture_png`)."""
    from nevis.data import images

    row = images.decode_image(image)[0, :4, 0].astype(int)
    return int(row[0] + 256 * row[1]), int(row[2]), int(row[3])


def write_prepared(data_dir: Path, tfds_name: str, version: str, features: Mapping[str, Any],
                   splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> Path:
    """A TFDS-prepared dataset (array_record) written without TensorFlow; returns its folder.

    Images must be encoded bytes (TFDS needs TF to encode arrays). Records keep the given order.
    """
    from nevis.data import storage_writer

    tfds = _tfds()
    base, _, config = tfds_name.partition("/")
    target = Path(data_dir) / tfds_name / version
    if target.exists():
        shutil.rmtree(target)

    class Fixture(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = base
        VERSION = tfds.core.Version(version)
        BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=config)] if config else []

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, disable_shuffling=True,
                                         features=tfds.features.FeaturesDict(dict(features)))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in splits}

        def _generate_examples(self, split):
            yield from enumerate(splits[split])

        def _log_download_done(self):
            pass

        def _log_download_bytes(self):
            pass

    with tempfile.TemporaryDirectory(prefix="nevis_tfds_fixture_") as downloads:
        builder = Fixture(config=config or None, data_dir=str(data_dir),
                          file_format="array_record")
        with storage_writer.quiet_deterministic_build():
            builder.download_and_prepare(download_dir=downloads)
    return Path(builder.data_dir)


def to_tfrecord(path: str | os.PathLike, shards: int = 2) -> Path:
    """Rewrites a prepared array_record TFDS folder in place as TFRecord shards, as TFDS with
    TensorFlow writes them (`<name>-<split>.tfrecord-NNNNN-of-MMMMM`, dataset_info.json's
    fileFormat and shardLengths). Each split is cut into up to `shards` shards. For tests."""
    from array_record.python.array_record_data_source import ArrayRecordDataSource

    path = Path(path)
    info_file = path / "dataset_info.json"
    info = json.loads(info_file.read_text())
    builder = _tfds().builder_from_directory(str(path))
    for split in info["splits"]:
        instructions = builder.info.splits[split["name"]].file_instructions
        source = ArrayRecordDataSource(list(instructions))
        records = [source[i] for i in range(len(source))]
        cuts = np.array_split(np.arange(len(records)), max(1, min(shards, len(records))))
        prefix = f"{info['name']}-{split['name']}.tfrecord"
        for i, cut in enumerate(cuts):
            write_tfrecord(path / f"{prefix}-{i:05d}-of-{len(cuts):05d}",
                           [records[j] for j in cut])
        split["shardLengths"] = [str(len(cut)) for cut in cuts]
        for fi in instructions:
            Path(fi.filename).unlink()
    info["fileFormat"] = "tfrecord"
    info_file.write_text(json.dumps(info, indent=1))
    return path


# ------------------------------------------------------------------------------ tfds:NAME datasets


def user_handler(spec: str, key: str | None = None) -> TfdsHandler:
    """The handler for `--dataset=tfds:NAME[:VERSION]`: any TFDS image classification dataset.

    Its official splits are used (train → 70/15/15 with test, 80/20 with validation and test,
    or 56/12/12/20 alone; stratified), "label" (ClassLabel) or "labels" (Sequence of ClassLabel)
    as the target. Features are taken from TFDS's registry when it knows the name, else the
    dataset is read as single-label.
    """
    name, _, version = spec.partition(":")
    name = name.strip().strip("/")
    if not name:
        raise ValueError(f"tfds:{spec}: give a TFDS name, e.g. tfds:beans or tfds:voc/2007")
    label: LabelSpec = Label("label")
    homepage, channels = "", 3
    try:
        info = _tfds().builder(name).info
        features = info.features
        if "label" not in features and "labels" in features:
            label = MultiLabel("labels")
        image = features["image"] if "image" in features else None
        if image is not None and image.shape and image.shape[-1] == 1:
            channels = 1
        homepage = info.homepage or ""
        version = version or str(info.version)
    except Exception:  # noqa: BLE001 - unregistered name: read whatever is prepared.
        pass
    return TfdsHandler(
        key=key or canonical_key(name),
        name=name,
        year=datetime.date.today().year,
        tfds_name=name,
        tfds_version=version or None,
        recipe=official_splits(),
        label=label,
        homepage=homepage or f"https://www.tensorflow.org/datasets/catalog/{name.split('/')[0]}",
        kind=TaskKind.MULTI_LABEL if label.multi else TaskKind.SINGLE_LABEL,
        channels=channels,
    )
