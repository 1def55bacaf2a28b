"""ImageNet ILSVRC-2012 (Russakovsky et al. 2015; ImageNet: Deng et al. 2009): 1,000 classes.

TFDS `imagenet2012` 5.1.0 (train 1,281,167 / validation 50,000); labels are WordNet ids. TFDS
builds it only from ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, downloaded by hand
from https://image-net.org/download-images.php (registration) into the manual folder. Recipe:
TFDS train → first 90% train / next 5% dev / last 5% dev_test (index order); TFDS validation
→ test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, train_fractions

HANDLER = TfdsHandler(
    key="imagenet2012",
    name="ImageNet",
    year=2012,
    tfds_name="imagenet2012",
    tfds_version="5.1.0",
    recipe=train_fractions(0.9, 0.05, test="validation"),
    label=Label("label"),
    homepage="https://image-net.org/",
    num_classes=1000,
    manual_files=("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"),
    manual_page="https://image-net.org/download-images.php",
)
