"""CBIS-DDSM (Lee, Gimenez, Hoogi, Miyake, Gorovoy & Rubin, "A curated mammography data set for
use in computer-aided detection and diagnosis research", Scientific Data 2017), the curated
subset of the Digital Database for Screening Mammography: mammograms with calcification and mass
findings, each finding benign, benign without callback, or malignant.

Raw file: the Kaggle dataset `awsaf49/cbis-ddsm-breast-cancer-image-dataset`
(`cbis-ddsm-breast-cancer-image-dataset.zip`, md5 published by the reference; the DICOMs
converted to JPEG), read in place:
- `csv/dicom_info.csv`: one row per JPEG; `image_path` is `CBIS-DDSM/jpeg/<series uid>/<n>.jpg`
  (the member is `jpeg/<series uid>/<n>.jpg`), `PatientID` the case, e.g.
  `Calc-Test_P_00038_LEFT_CC` for the full mammogram (`..._1` etc. for crops and ROI masks);
- `csv/{calc,mass}_case_description_{train,test}_set.csv`: one row per finding, with
  `pathology` and `image file path` = `<case>/<uid>/<uid>/000000.dcm`;
- `jpeg/<series uid>/*.jpg`.

Label rule (the reference's, which uses the full images): each finding row is joined to the
dicom_info rows whose PatientID is the first part of its `image file path` (so only the full
mammogram, whose PatientID is the bare case); an image takes the pathology of the first finding
that reaches it (calc rows before mass rows, file order) — later findings of the same image are
dropped, as the reference's drop_duplicates. Classes: BENIGN, MALIGNANT, BENIGN_WITHOUT_CALLBACK
(the reference's order). Grey. Recipe (`official_test()`): the calc and mass training sets →
70/15/15 train/dev/dev_test; their test sets → test.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers import _zip_members as zm
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import Kaggle, PrepareError

ARCHIVE = "cbis-ddsm-breast-cancer-image-dataset.zip"
DICOM_INFO = "csv/dicom_info.csv"
DESCRIPTIONS = {
    "train": ("csv/calc_case_description_train_set.csv",
              "csv/mass_case_description_train_set.csv"),
    "test": ("csv/calc_case_description_test_set.csv", "csv/mass_case_description_test_set.csv"),
}
CLASS_NAMES = ("BENIGN", "MALIGNANT", "BENIGN_WITHOUT_CALLBACK")


def _rows(archive: Path, member: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    text = zm.read(archive, member).decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = set(columns) - set(reader.fieldnames or ())
    if missing:
        raise PrepareError(f"ddsm: {member} lacks the columns {sorted(missing)}.")
    return list(reader)


def image_member(image_path: str) -> str:
    """`CBIS-DDSM/jpeg/<uid>/<file>` -> the zip member `jpeg/<uid>/<file>`."""
    parts = image_path.strip().replace("\\", "/").split("/")
    return f"jpeg/{parts[-2]}/{parts[-1]}"


def images_by_case(rows: list[dict[str, str]]) -> dict[str, list[str]]:
    """PatientID -> its image members, in dicom_info order."""
    out: dict[str, list[str]] = {}
    for row in rows:
        out.setdefault(row["PatientID"].strip(), []).append(image_member(row["image_path"]))
    return out


def labelled_images(findings: list[dict[str, str]],
                    by_case: dict[str, list[str]]) -> list[tuple[str, int]]:
    """(image member, label) per image reached by a finding; the first finding wins."""
    label_of = {name: i for i, name in enumerate(CLASS_NAMES)}
    out: dict[str, int] = {}
    for row in findings:
        pathology = row["pathology"].strip()
        if pathology not in label_of:
            raise PrepareError(f"ddsm: unknown pathology {pathology!r}.")
        case = row["image file path"].strip().split("/")[0]
        for image in by_case.get(case, ()):
            out.setdefault(image, label_of[pathology])
    return list(out.items())


def build(ctx: BuildContext) -> Built:
    archive = ctx.path(ARCHIVE)
    by_case = images_by_case(_rows(archive, DICOM_INFO, ("image_path", "PatientID")))
    present = set(zm.files(archive))
    items, counts = [], {}
    for group, members in DESCRIPTIONS.items():
        findings = [row for member in members
                    for row in _rows(archive, member, ("pathology", "image file path"))]
        images = labelled_images(findings, by_case)
        missing = [image for image, _ in images if image not in present]
        if missing:
            raise PrepareError(f"ddsm: {len(missing)} images named in {DICOM_INFO} are not in "
                               f"{ARCHIVE} (first: {missing[0]}).")
        items += [recipes.Item(zm.reader(archive, image), label, group=group, name=image)
                  for image, label in images]
        counts[group] = {"findings": len(findings), "images": len(images)}
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=1,
                 metadata={"per_official_split": counts})


# ------------------------------------------------------------------------------------- fixture

_DESCRIPTION_COLUMNS = (
    "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,"
    "{kind} type,{kind} distribution,assessment,pathology,subtlety,image file path,"
    "cropped image file path,ROI mask file path"
)


def write_fixture(folder: Path) -> None:
    """Train: 8 calc and 8 mass cases; test: 2 + 2; every class in both. Each case has a full
    mammogram and an ROI crop (never labelled); two cases have two findings (the first wins)."""
    rng = np.random.default_rng(2017)
    members: dict[str, bytes | str] = {}
    dicom = ["file_path,image_path,AccessionNumber,PatientID,SeriesDescription,Rows,Columns"]
    uid = iter(range(1000, 2000))
    for group, per_kind in (("train", 8), ("test", 2)):
        for kind, member in zip(("calc", "mass"), DESCRIPTIONS[group], strict=True):
            rows = [_DESCRIPTION_COLUMNS.format(kind=kind)]
            split = "Training" if group == "train" else "Test"
            for i in range(per_kind):
                patient = f"P_{100 * (group == 'test') + 10 * (kind == 'mass') + i:05d}"
                case = f"{kind.capitalize()}-{split}_{patient}_LEFT_CC"
                series = [f"1.3.6.1.4.1.9590.100.1.2.{next(uid)}" for _ in range(2)]
                for j, (suffix, description) in enumerate(
                        (("", "full mammogram images"), ("_1", "cropped images"))):
                    image = f"jpeg/{series[j]}/1-{j + 1}.jpg"
                    members[image] = fixtures.image_bytes(rng, "JPEG", (20, 12), "L")
                    dicom.append(f"CBIS-DDSM/dicom/{series[j]}/1-{j + 1}.dcm,CBIS-DDSM/{image},"
                                 f",{case}{suffix},{description},20,12")
                findings = 2 if i in (0, 3) else 1
                for f in range(findings):
                    pathology = CLASS_NAMES[(i + f) % 3]
                    dcm = f"{case}/1.3.6.1.4.1.9590.100.1.2.9{i}/{series[0]}/000000.dcm"
                    rows.append(f"{patient},3,LEFT,CC,{f + 1},{kind},X,Y,4,{pathology},3,{dcm},"
                                f"\"{case}_{f + 1}/a/b/000000.dcm\n\",{case}_{f + 1}/a/c/1.dcm")
            members[member] = "\n".join(rows) + "\n"
    members[DICOM_INFO] = "\n".join(dicom) + "\n"
    members["csv/meta.csv"] = "SeriesInstanceUID,StudyInstanceUID,Modality\n"
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="ddsm",
    name="DDSM",
    year=2017,
    sources=(Kaggle("awsaf49/cbis-ddsm-breast-cancer-image-dataset",
                    md5="eba16e95a30193fcbda1d2668d96015f"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://www.kaggle.com/datasets/awsaf49/cbis-ddsm-breast-cancer-image-dataset",
    num_classes=3,
)
