"""TID2013 (Ponomarenko et al., "Color Image Database TID2013: Peculiarities and Preliminary
Results", EUVIP 2013): the 25 TID reference images, each distorted by 24 distortion types at 5
levels (3,000 distorted 512×384 BMPs). NEVIS'22 turns quality into 5-way classification.

Raw file: `tid2013.rar` (ponomarenko.info, md5 published by the reference), a RAR archive with
`distorted_images/i<SS>_<DD>_<L>.bmp`, `reference_images/`, `mos.txt` and
`metrics_values/MSSIM.txt` (the MS-SSIM of every distorted image, one a line, in subject,
distortion, level order); files are found by name anywhere in the archive, as for TID2008.

Label rule, recipe and RAR extraction as TID2008 (`tid2008.py`): the 3,000 MS-SSIM values are
sorted and cut into 5 buckets of 600; an image's label is the first bucket holding its value
(bucket 0 = lowest MS-SSIM); random 56/12/12/20.
"""

from __future__ import annotations

from nevis.data.handlers.base import Handler
from nevis.data.handlers.tid2008 import NUM_CLASSES, make_build, make_fixture_writer
from nevis.data.sources import Url

ARCHIVE = "tid2013.rar"
NUM_TYPES, NUM_LEVELS = 24, 5

HANDLER = Handler(
    key="tid2013",
    name="TID2013",
    year=2013,
    sources=(Url("https://ponomarenko.info/tid2013/tid2013.rar",
                 md5="2c42bec2407adc49cf4d7858daf8f99b"),),
    build=make_build(ARCHIVE, NUM_TYPES, NUM_LEVELS),
    write_fixture=make_fixture_writer(ARCHIVE, "MSSIM.txt", NUM_TYPES, NUM_LEVELS, seed=2013),
    homepage="https://ponomarenko.info/tid2013.htm",
    num_classes=NUM_CLASSES,
)
