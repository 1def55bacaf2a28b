"""Handler logic of group d4 beyond the generic fixture test: BIWI's pose bins (with the
reference's off-by-one fixed) and subject split, ShanghaiTech's count buckets and split,
AnimalWeb's labels, AWA2's attribute labels, DDSM's finding-to-image join, MNIST-rot's rotation,
the COVID-19 layouts and NIH's multi-label rows."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import recipes
from nevis.data.handlers import (
    animal_web,
    awa2,
    biwi,
    covid_19_xray,
    ddsm,
    mnist_rotation,
    nih_chest_xray,
    shanghai_tech,
)
from nevis.data.handlers.base import BuildContext


def _built(handler, tmp_path: Path):
    folder = handler.fixture(tmp_path / "fixture")
    files = {s.filename: folder / s.filename for s in handler.sources}
    return handler.build(BuildContext(handler.key, files, tmp_path / "scratch"))


# ------------------------------------------------------------------------------------------ BIWI


def test_biwi_angles_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        angles = rng.uniform([-80, -60, -50], [80, 60, 50])
        got = biwi.yaw_pitch_roll(biwi.rotation_matrix(*angles))
        np.testing.assert_allclose(got, angles, atol=1e-9)


def test_biwi_rotation_parsed_from_pose_text():
    rotation = biwi.rotation_matrix(10, -20, 5)
    parsed = biwi.read_rotation(biwi.pose_text(rotation))
    np.testing.assert_allclose(parsed, rotation, atol=1e-5)


def test_biwi_bins_are_the_references_with_the_maximum_in_the_last_bin():
    rng = np.random.default_rng(1)
    values = rng.normal(0, 20, 503)
    edges = biwi.bin_edges(values)
    assert edges[0] == values.min() and edges[-1] == values.max()
    bins = np.array([biwi.bin_of(v, edges) for v in values])
    below_max = values < values.max()
    # The reference: np.digitize(x, edges) - 1, which is right below the maximum ...
    np.testing.assert_array_equal(bins[below_max], np.digitize(values[below_max], edges) - 1)
    # ... and the maximum (where the reference overflowed) goes to the last bin.
    assert bins[~below_max].tolist() == [biwi.NUM_BINS - 1]
    assert np.bincount(bins, minlength=5).min() >= len(values) // 5 - 1  # equal frequency


def test_biwi_labels_one_per_angle_and_split_by_sequence(tmp_path):
    built = _built(biwi.HANDLER, tmp_path)
    assert len(built.class_names) == 15
    for item in built.items:
        assert [label // biwi.NUM_BINS for label in item.label] == [0, 1, 2]
    splits = {item.name.split("/")[1]: item.split for item in built.items}
    assert splits == {"01": "test", "02": "dev", "03": "dev_test", "05": "train", "06": "train"}
    assert biwi.split_of(10) == "test" and biwi.split_of(9) == "dev_test"
    assert biwi.split_of(7) == "dev" and biwi.split_of(24) == "train"


# ---------------------------------------------------------------------------------- ShanghaiTech


def _reference_count_to_label(counts: list[int], buckets: int = 10) -> list[int]:
    """The reference's quantisation loop, transcribed for comparison."""
    max_size = shanghai_tech.MAX_COUNT
    histogram = np.zeros(max_size)
    for c in counts:
        histogram[min(c, max_size - 1)] += 1
    cumulative = np.cumsum(histogram)
    per_bucket = histogram.sum() / buckets
    intervals = [np.where(cumulative < per_bucket * k)[0][-1] for k in range(1, buckets)]
    intervals.append(max_size)
    out, label = [], 0
    for count in range(max_size):
        if count > intervals[label]:
            label += 1
        out.append(label)
    return out


def test_shanghai_tech_buckets_match_the_reference():
    rng = np.random.default_rng(2)
    counts = [int(c) for c in rng.lognormal(5, 1, 1198).astype(int) + 9]
    edges = shanghai_tech.bucket_edges(counts)
    assert len(set(edges)) == len(edges)
    reference = _reference_count_to_label(counts)
    assert [shanghai_tech.bucket_of(c, edges) for c in counts] == [reference[c] for c in counts]
    sizes = np.bincount([shanghai_tech.bucket_of(c, edges) for c in counts], minlength=10)
    assert sizes.min() > 0.05 * len(counts)
    names = shanghai_tech.bucket_names(edges)
    assert len(names) == 10 and names[0] == f"0-{edges[0]}" and names[1].startswith(
        f"{edges[0] + 1}-")


def test_shanghai_tech_head_count_and_split():
    rng = np.random.default_rng(3)
    assert shanghai_tech.head_count(shanghai_tech._mat_bytes(37, rng)) == 37
    splits = shanghai_tech.train_splits(700)
    # The real 700 training images: int(0.7 * 700) is 489 in floating point, as in the reference.
    assert [splits.count(s) for s in ("train", "dev", "dev_test")] == [489, 106, 105]
    order = np.random.default_rng(1).permutation(700)
    assert splits[order[0]] == "train" and splits[order[-1]] == "dev_test"


def test_shanghai_tech_ignores_the_h5_empty_copy(tmp_path):
    built = _built(shanghai_tech.HANDLER, tmp_path)
    assert len(built.items) == 20 and not any("h5_empty" in i.name for i in built.items)
    assert sum(i.split == "test" for i in built.items) == 6


# ------------------------------------------------------------------------------------- AnimalWeb


def test_animal_web_labels_by_file_name_prefix(tmp_path):
    built = _built(animal_web.HANDLER, tmp_path)
    assert len(built.class_names) == 352
    for item in built.items:
        assert built.class_names[item.label] == item.name.split("_")[0]
    assert built.metadata["same_name_images_dropped"] == 1
    assert len(recipes.deduplicate(built.items).items) == len(built.items) - 1


# ------------------------------------------------------------------------------- other datasets


def test_awa2_labels_are_the_class_attributes(tmp_path):
    built = _built(awa2.HANDLER, tmp_path)
    folder = tmp_path / "fixture" / "awa2"
    with zipfile.ZipFile(folder / awa2.ARCHIVE) as zf:
        matrix = np.loadtxt(io.StringIO(zf.read(
            f"{awa2.ROOT}/predicate-matrix-binary.txt").decode()), dtype=int)
    assert list(built.class_names) == awa2.PREDICATES
    for item in built.items:
        animal = item.name.split("/")[2]
        assert item.label == list(np.flatnonzero(matrix[awa2.ANIMALS.index(animal)]))
        assert item.group == ("test" if animal in awa2.TEST_ANIMALS else "train")


def test_ddsm_first_finding_wins_and_crops_are_not_labelled(tmp_path):
    by_case = {"Calc-Test_P_1_LEFT_CC": ["jpeg/1/a.jpg"],
               "Calc-Test_P_1_LEFT_CC_1": ["jpeg/2/b.jpg"]}
    findings = [
        {"pathology": "MALIGNANT", "image file path": "Calc-Test_P_1_LEFT_CC/x/y/000000.dcm"},
        {"pathology": "BENIGN", "image file path": "Calc-Test_P_1_LEFT_CC/x/y/000000.dcm"},
        {"pathology": "BENIGN", "image file path": "Calc-Test_P_9_LEFT_CC/x/y/000000.dcm"},
    ]
    assert ddsm.labelled_images(findings, by_case) == [("jpeg/1/a.jpg", 1)]
    assert ddsm.image_member("CBIS-DDSM/jpeg/1.3.6/1-1.jpg") == "jpeg/1.3.6/1-1.jpg"
    built = _built(ddsm.HANDLER, tmp_path)
    assert all(item.name.endswith("/1-1.jpg") for item in built.items)  # full mammograms only
    assert {item.group for item in built.items} == {"train", "test"}


def test_mnist_rotation_rotates_training_images_only(tmp_path):
    built = _built(mnist_rotation.HANDLER, tmp_path)
    folder = tmp_path / "fixture" / "mnist_rotation"
    raw = {group: mnist_rotation.read_idx(folder / files[0], 2051)
           for group, files in mnist_rotation.FILES.items()}
    train = [i for i in built.items if i.group == "train"]
    test = [i for i in built.items if i.group == "test"]
    angles = mnist_rotation.rotation_angles(len(train))
    for k, item in enumerate(train):
        np.testing.assert_array_equal(item.image, mnist_rotation.rotate(raw["train"][k],
                                                                        angles[k]))
    for k, item in enumerate(test):
        np.testing.assert_array_equal(item.image, raw["test"][k])
    assert not np.array_equal(train[0].image, raw["train"][0]) or angles[0] == 0


def test_covid_19_xray_reads_both_layouts():
    label = covid_19_xray.label_of_member
    assert label("COVID-19_Radiography_Dataset/COVID/COVID-1.png") == 0
    assert label("COVID-19_Radiography_Dataset/Viral Pneumonia/images/Viral Pneumonia-3.png") == 3
    assert label("COVID-19_Radiography_Dataset/Normal/masks/Normal-3.png") is None
    assert label("COVID-19_Radiography_Dataset/COVID.metadata.xlsx") is None


def test_nih_chest_xray_rows_are_multi_label():
    text = ("Image Index,Finding Labels,Follow-up #,Patient ID\n"
            "00000001_000.png,Cardiomegaly|Emphysema,0,1\n"
            "00000002_000.png,No Finding,0,2\n")
    assert nih_chest_xray.read_labels(text) == {"00000001_000.png": [5, 10],
                                                "00000002_000.png": [14]}


def test_fixtures_are_small_and_deterministic(tmp_path):
    for handler in (biwi.HANDLER, shanghai_tech.HANDLER, animal_web.HANDLER, ddsm.HANDLER):
        a = handler.fixture(tmp_path / "a")
        b = handler.fixture(tmp_path / "b")
        for source in handler.sources:
            data = (a / source.filename).read_bytes()
            assert len(data) < 300_000
            if not source.filename.endswith(".zip"):  # zip entries carry the write time
                assert data == (b / source.filename).read_bytes()


def test_scipy_mat_fixture_has_the_reference_structure():
    rng = np.random.default_rng(4)
    mat = scipy.io.loadmat(io.BytesIO(shanghai_tech._mat_bytes(5, rng)))
    assert mat["image_info"][0][0][0][0][0].shape == (5, 2)  # the reference's access path
