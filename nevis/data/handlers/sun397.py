"""SUN 397 (Xiao et al. 2010): 397 scene categories.

TFDS `sun397` (default config `tfds`) 4.0.0 (train 76,128 / validation 10,875 / test 21,750).
Recipe: TFDS train → first 80% train / rest dev (index order); validation → dev_test;
test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_validation_test

HANDLER = TfdsHandler(
    key="sun397",
    name="SUN 397",
    year=2010,
    tfds_name="sun397/tfds",
    tfds_version="4.0.0",
    recipe=train_validation_test(0.8),
    label=Label("label"),
    homepage="https://vision.princeton.edu/projects/2010/SUN/",
    num_classes=397,
    catalog_source="sun397",
)
