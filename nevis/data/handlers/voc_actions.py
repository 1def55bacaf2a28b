"""PASCAL VOC 2012 action classification (Everingham et al., "The PASCAL Visual Object Classes
Challenge 2012"): people performing 10 actions, or "other". A multi-label task over person boxes.

Raw file: `VOCtrainval_11-May-2012.tar` (uncompressed, 2 GB; host.robots.ox.ac.uk, with the md5
the reference publishes for its copy of the same file), of which are read:
- `VOCdevkit/VOC2012/ImageSets/Action/<action>_trainval.txt` for the 10 actions: one person a
  line, `<image id> <object index> <flag>`;
- `VOCdevkit/VOC2012/Annotations/<image id>.xml`: every `<object>` with an `<actions>` element
  (`<jumping>0</jumping>`, …, `<other>1</other>`) and its `<bndbox>` (xmin, ymin, xmax, ymax);
- `VOCdevkit/VOC2012/JPEGImages/<image id>.jpg`.
Members are read in place by their offset in the tar (no extraction of the 2 GB archive).

Recast (as the reference): every image listed in any action's trainval file, each annotated
object cropped to its box (PIL's crop of (xmin, ymin, xmax, ymax) after int(float(·))) is one
example; its labels are the actions flagged 1, in ACTIONS order (the reference's list, "other"
last). Objects without an `<actions>` element, or with an empty box, are skipped and counted in
the metadata (the reference would fail on them); an object with no flagged action keeps an
empty label set, as in the reference. Crops are stored as RGB arrays. Recipe: random
56/12/12/20 of all crops (multi-label: not stratified).

Not fetched: `VOC2012test.tar`, which the reference lists but never reads (it needs a login).
"""

from __future__ import annotations

import io
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Url
from nevis.tasks import TaskKind

ARCHIVE = "VOCtrainval_11-May-2012.tar"
ROOT = "VOCdevkit/VOC2012"
ACTIONS = (
    "jumping", "phoning", "playinginstrument", "reading", "ridingbike", "ridinghorse",
    "running", "takingphoto", "usingcomputer", "walking", "other",
)


class Crop:
    """One object's box cut from a JPEG member of the uncompressed tar (read by offset)."""

    __slots__ = ("archive", "box", "offset", "size")

    def __init__(self, archive: Path, offset: int, size: int, box: tuple[int, int, int, int]):
        self.archive, self.offset, self.size, self.box = archive, offset, size, box

    def __call__(self) -> np.ndarray:
        with open(self.archive, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(f"{self.archive}: truncated member at offset {self.offset}")
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("RGB").crop(self.box))


def parse_objects(xml: bytes) -> list[tuple[tuple[int, int, int, int], list[int]] | None]:
    """Per `<object>`: (box, action labels), or None when it has no `<actions>`."""
    objects = []
    for element in ET.fromstring(xml).iter("object"):
        actions = element.find("actions")
        box = element.find("bndbox")
        if actions is None or box is None:
            objects.append(None)
            continue
        xmin, ymin, xmax, ymax = (int(float(box.findtext(k, "nan")))
                                  for k in ("xmin", "ymin", "xmax", "ymax"))
        flags = {child.tag: int(float(child.text or 0)) for child in actions}
        unknown = set(flags) - set(ACTIONS)
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)} (known: {list(ACTIONS)})")
        objects.append(((xmin, ymin, xmax, ymax),
                        [label for label, a in enumerate(ACTIONS) if flags.get(a) == 1]))
    return objects


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    with tarfile.open(archive, "r:") as tf:  # uncompressed: members are read by offset
        members = {m.name: m for m in tf.getmembers() if m.isfile()}
        image_ids: set[str] = set()
        for action in ACTIONS[:-1]:
            name = f"{ROOT}/ImageSets/Action/{action}_trainval.txt"
            if name not in members:
                raise ValueError(f"{ARCHIVE}: no {name} — has the layout changed?")
            text = tf.extractfile(members[name]).read().decode()
            image_ids.update(line.split()[0] for line in text.splitlines() if line.strip())
        items = []
        counts = {"images": 0, "objects_without_actions": 0, "empty_boxes": 0,
                  "objects_without_labels": 0, "images_without_annotation": 0}
        for image_id in sorted(image_ids):
            xml_name = f"{ROOT}/Annotations/{image_id}.xml"
            jpeg = members.get(f"{ROOT}/JPEGImages/{image_id}.jpg")
            if xml_name not in members or jpeg is None:
                counts["images_without_annotation"] += 1  # the reference skips them too
                continue
            counts["images"] += 1
            objects = parse_objects(tf.extractfile(members[xml_name]).read())
            for index, found in enumerate(objects, 1):
                if found is None:
                    counts["objects_without_actions"] += 1
                    continue
                box, labels = found
                if box[2] <= box[0] or box[3] <= box[1]:
                    counts["empty_boxes"] += 1
                    continue
                counts["objects_without_labels"] += not labels
                items.append(recipes.Item(Crop(archive, jpeg.offset_data, jpeg.size, box),
                                          labels, name=f"{image_id}.jpg#{index}"))
    if not items:
        raise ValueError(f"{ARCHIVE}: no action boxes found.")
    return Built(ACTIONS, items, recipes.random_split(), channels=3,
                 metadata={**counts, "boxes": len(items)})


# ------------------------------------------------------------------------------------- fixture


def _annotation(image_id: str, size: tuple[int, int], objects: list[dict]) -> str:
    h, w = size
    parts = [f"<annotation><folder>VOC2012</folder><filename>{image_id}.jpg</filename>"
             "<source><database>The VOC2012 Database</database><annotation>PASCAL VOC2012"
             f"</annotation><image>flickr</image></source><size><width>{w}</width><height>{h}"
             "</height><depth>3</depth></size><segmented>0</segmented>"]
    for obj in objects:
        xmin, ymin, xmax, ymax = obj["box"]
        parts.append(f"<object><name>{obj['name']}</name>")
        if "actions" in obj:
            flags = "".join(f"<{a}>{int(a in obj['actions'])}</{a}>" for a in sorted(ACTIONS))
            parts.append(f"<actions>{flags}</actions>")
        parts.append(f"<bndbox><xmax>{xmax}</xmax><xmin>{xmin}</xmin><ymax>{ymax}</ymax>"
                     f"<ymin>{ymin}</ymin></bndbox><point><x>{(xmin + xmax) // 2}</x>"
                     f"<y>{(ymin + ymax) // 2}</y></point><pose>Unspecified</pose></object>")
    return "".join(parts) + "</annotation>\n"


def write_fixture(folder: Path) -> None:
    """24 action images with 1–2 people (one also riding with a second flagged action), one with
    a horse box without actions, and a detection-only image that no action file lists."""
    rng = np.random.default_rng(2012)
    members: dict[str, bytes | str] = {}
    people: list[tuple[str, int, list[str]]] = []  # (image id, object index, actions)
    for k in range(24):
        image_id = f"2011_{k + 1:06d}"
        size = (int(rng.integers(30, 40)), int(rng.integers(30, 48)))
        objects = []
        for _ in range(1 + k % 2):
            x, y = int(rng.integers(1, 10)), int(rng.integers(1, 10))
            actions = [ACTIONS[(k + len(objects)) % len(ACTIONS)]]
            if k == 5:
                actions.append("ridinghorse")
            objects.append({"name": "person", "box": (x, y, x + 15, y + 12),
                            "actions": actions})
        if k == 3:
            objects.append({"name": "horse", "box": (2.0, 3.0, 20.0, 25.0)})
        for index, obj in enumerate(objects, 1):
            if "actions" in obj:
                people.append((image_id, index, obj["actions"]))
        members[f"{ROOT}/JPEGImages/{image_id}.jpg"] = fixtures.image_bytes(rng, "JPEG", size)
        members[f"{ROOT}/Annotations/{image_id}.xml"] = _annotation(image_id, size, objects)
    members[f"{ROOT}/JPEGImages/2008_000001.jpg"] = fixtures.image_bytes(rng, "JPEG", (20, 20))
    members[f"{ROOT}/Annotations/2008_000001.xml"] = _annotation(
        "2008_000001", (20, 20), [{"name": "cat", "box": (1, 1, 19, 19)}])
    ids = sorted({image_id for image_id, _, _ in people})
    for image_set, chosen in (("train", ids[::2]), ("val", ids[1::2]), ("trainval", ids)):
        members[f"{ROOT}/ImageSets/Action/{image_set}.txt"] = "".join(f"{i}\n" for i in chosen)
        for action in ACTIONS[:-1]:
            members[f"{ROOT}/ImageSets/Action/{action}_{image_set}.txt"] = "".join(
                f"{image_id} {index} {1 if action in acts else -1:2d}\n"
                for image_id, index, acts in people if image_id in chosen)
    fixtures.write_tar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="voc_actions",
    name="VOC Actions",
    year=2012,
    sources=(
        Url("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/" + ARCHIVE,
            md5="6cd6e144f989b92b3379bac3b3de84fd"),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2012/",
    num_classes=len(ACTIONS),
    kind=TaskKind.MULTI_LABEL,
)
