"""smallNORB (LeCun, Huang & Bottou 2004): 5 toy categories, 10 instances each, 96×96 grey.

TFDS `smallnorb` 2.0.0 (train 24,300 of instances 4, 6, 7, 8, 9 / test 24,300 of the others).
Label = `label_category`; image = the left camera (`image`). Recipe (reference,
builders/smallnorb.py): TFDS train by `instance` — 7, 8, 9 → train, 4 → dev, 6 → dev_test;
TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, instances

HANDLER = TfdsHandler(
    key="smallnorb",
    name="NORB",
    year=2004,
    tfds_name="smallnorb",
    tfds_version="2.0.0",
    recipe=instances(),
    label=Label("label_category"),
    homepage="https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/",
    num_classes=5,
    channels=1,
)
