"""BIWI Kinect Head Pose (Fanelli, Dantone, Gall, Fossati & Van Gool, "Random Forests for Real
Time 3D Face Analysis", IJCV 2013): about 15,000 Kinect frames of 20 people (24 sequences) turning
their heads, each with the head's 3D rotation.

Raw file: the Kaggle dataset `kmader/biwi-kinect-head-pose-database`
(`biwi-kinect-head-pose-database.zip`, md5 published by the reference), read in place:
`faces_0/<NN>/frame_<n>_rgb.png` (640×480 colour) with `frame_<n>_pose.txt` (a 3×3 rotation
matrix on three lines, a blank line, the head centre) and `frame_<n>_depth.bin`, per sequence
NN = 01..24 (plus calibration files, `head_pose_masks/` and `db_annotations/`, not read). Frames
are found as `<NN>/frame_<n>_pose.txt` with an `_rgb.png` beside it, under any folder.

Recast (multi-label, the reference's): the rotation is turned into yaw, pitch and roll in degrees
(the z-y'-x'' Tait–Bryan angles of the rotation's quaternion, as pyquaternion's `yaw_pitch_roll`:
yaw = atan2(-R01, R00), pitch = asin(R02), roll = atan2(-R12, R22)); each angle is cut into 5
equal-frequency bins over all frames (edges at the 0, 20, …, 100 % points of its sorted values,
linearly interpolated). An image has 3 labels of 15: yaw bin j → j, pitch bin j → 5 + j, roll bin
j → 10 + j. (The reference names the three groups roll, pitch, yaw, but its values are yaw,
pitch, roll in that order; the names here say what the values are.)

Fix (the reference's off-by-one): the reference's stored labels send values at the top of an
angle's last bin one index too far — into the first bin of the next angle (an angle group with no
label, the next with two) — and it patches this when the data are loaded (`streams/nevis.py`,
`_patch_biwi_minibatch`: an empty group gets its last bin, a group with two loses its first).
Here each value is binned once into its own angle's 5 bins (the maximum into the last), which is
what the patched labels are, so the stored labels need no patch.

Recipe (bespoke, `explicit`, the reference's): by sequence — 1, 4, 8, 10 → test; 3, 9 → dev_test;
2, 7 → dev; the others → train.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError
from nevis.tasks import TaskKind

ARCHIVE = "biwi-kinect-head-pose-database.zip"
ANGLES = ("yaw", "pitch", "roll")
NUM_BINS = 5
CLASS_NAMES = tuple(f"{angle}_bin{j}" for angle in ANGLES for j in range(NUM_BINS))
SPLIT_OF_SEQUENCE = {
    **{s: "test" for s in (1, 4, 8, 10)},
    **{s: "dev_test" for s in (3, 9)},
    **{s: "dev" for s in (2, 7)},
}
_POSE = re.compile(r"^(.*/)?(\d{2})/(frame_\d+)_pose\.txt$")


def read_rotation(text: str) -> np.ndarray:
    rows = [[float(v) for v in line.split()] for line in text.splitlines()[:3]]
    rotation = np.array(rows)
    if rotation.shape != (3, 3):
        raise ValueError(f"expected a 3×3 rotation on the first three lines, got {rows}")
    return rotation


def yaw_pitch_roll(rotation: np.ndarray) -> np.ndarray:
    """Degrees (yaw, pitch, roll) of a rotation matrix, R = Rx(roll) Ry(pitch) Rz(yaw)."""
    r = rotation
    yaw = np.arctan2(-r[0, 1], r[0, 0])
    pitch = np.arcsin(np.clip(r[0, 2], -1.0, 1.0))
    roll = np.arctan2(-r[1, 2], r[2, 2])
    return np.degrees([yaw, pitch, roll])


def bin_edges(values: np.ndarray, bins: int = NUM_BINS) -> np.ndarray:
    """Equal-frequency edges (bins + 1 of them; the first is the minimum, the last the maximum)."""
    n = len(values)
    return np.interp(np.linspace(0, n, bins + 1), np.arange(n), np.sort(values))


def bin_of(value: float, edges: np.ndarray) -> int:
    """Bin j holds [edges[j], edges[j+1]); the maximum goes to the last bin."""
    return int(np.searchsorted(edges[1:-1], value, side="right"))


def labels_of(angles: np.ndarray, edges: list[np.ndarray]) -> list[int]:
    return [NUM_BINS * a + bin_of(angles[a], edges[a]) for a in range(len(ANGLES))]


def split_of(sequence: int) -> str:
    return SPLIT_OF_SEQUENCE.get(sequence, "train")


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    names = zm.files(archive)
    present = set(names)
    frames = []  # (image member, sequence, angles)
    for name in sorted(names):
        match = _POSE.match(name)
        if not match:
            continue
        prefix, sequence, frame = match.groups()
        image = f"{prefix or ''}{sequence}/{frame}_rgb.png"
        if image not in present:
            continue
        try:
            rotation = read_rotation(zm.read(archive, name).decode("utf-8"))
        except ValueError as e:
            raise PrepareError(f"biwi: {name}: {e}") from e
        frames.append((image, int(sequence), yaw_pitch_roll(rotation)))
    if not frames:
        raise PrepareError(f"biwi: no <NN>/frame_<n>_pose.txt with an _rgb.png in {ARCHIVE}.")
    angles = np.stack([f[2] for f in frames])
    edges = [bin_edges(angles[:, a]) for a in range(len(ANGLES))]
    items = [recipes.Item(zm.reader(archive, image), labels_of(frame_angles, edges),
                          split=split_of(sequence), name=image)
             for image, sequence, frame_angles in frames]
    return Built(CLASS_NAMES, items, recipes.explicit(), channels=3,
                 metadata={"bin_edges_degrees": {a: [round(float(v), 4) for v in e]
                                                 for a, e in zip(ANGLES, edges, strict=True)},
                           "frames": len(frames),
                           "sequences": sorted({f[1] for f in frames})})


# ------------------------------------------------------------------------------------- fixture


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rx(roll) Ry(pitch) Rz(yaw), angles in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    return rx @ ry @ rz


def pose_text(rotation: np.ndarray, centre=(88.7665, -4.08406, 878.874)) -> str:
    rows = "".join(" ".join(f"{v:g}" for v in row) + " \n" for row in rotation)
    return rows + "\n" + " ".join(f"{v:g}" for v in centre) + " \n"


def write_fixture(folder: Path) -> None:
    """Sequences 01 (test), 02 (dev), 03 (dev_test), 05 and 06 (train), 4 frames each."""
    rng = np.random.default_rng(2013)
    members: dict[str, bytes | str] = {"readme.txt": "BIWI fixture\n"}
    for sequence in (1, 2, 3, 5, 6):
        base = f"faces_0/{sequence:02d}"
        members[f"{base}/depth.cal"] = "575.8 0 320\n0 575.8 240\n0 0 1\n"
        members[f"{base}/rgb.cal"] = "517.7 0 320\n0 517.7 240\n0 0 1\n"
        for frame in range(3, 3 + 4):
            yaw, pitch, roll = rng.uniform(-60, 60), rng.uniform(-40, 40), rng.uniform(-30, 30)
            stem = f"{base}/frame_{frame:05d}"
            members[f"{stem}_rgb.png"] = fixtures.image_bytes(rng, "PNG", (12, 16))
            members[f"{stem}_pose.txt"] = pose_text(rotation_matrix(yaw, pitch, roll))
            members[f"{stem}_depth.bin"] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
            members[f"head_pose_masks/{sequence:02d}/frame_{frame:05d}_depth_mask.png"] = (
                fixtures.image_bytes(rng, "PNG", (12, 16), "L"))
            members[f"db_annotations/{sequence:02d}/frame_{frame:05d}_pose.bin"] = bytes(24)
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="biwi",
    name="BIWI",
    year=2013,
    sources=(Kaggle("kmader/biwi-kinect-head-pose-database",
                    md5="59d49d96e5719f248f6d66f8ff205569"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/kmader/biwi-kinect-head-pose-database",
    num_classes=15,
    kind=TaskKind.MULTI_LABEL,
)
