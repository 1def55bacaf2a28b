"""PatchCamelyon (Veeling et al. 2018): 96×96 histopathology patches, metastasis or not.

TFDS `patch_camelyon` 2.0.0 (train 262,144 / validation 32,768 / test 32,768). Recipe: TFDS
train → first 80% train / rest dev (index order); validation → dev_test; test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_validation_test

HANDLER = TfdsHandler(
    key="patch_camelyon",
    name="PatchCamelyon",
    year=2018,
    tfds_name="patch_camelyon",
    tfds_version="2.0.0",
    recipe=train_validation_test(0.8),
    label=Label("label"),
    homepage="https://patchcamelyon.grand-challenge.org/",
    num_classes=2,
)
