"""Stanford Dogs (Khosla et al. 2011): 120 dog breeds from ImageNet.

TFDS `stanford_dogs` 0.2.0 (train 12,000 / test 8,580). Recipe: TFDS train → 70/15/15
train/dev/dev_test (index order); TFDS test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="stanford_dogs",
    name="Stanford Dogs",
    year=2011,
    tfds_name="stanford_dogs",
    tfds_version="0.2.0",
    recipe=train_fractions(0.7, 0.15),
    label=Label("label"),
    homepage="http://vision.stanford.edu/aditya86/ImageNetDogs/",
    num_classes=120,
)
