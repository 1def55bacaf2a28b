"""DomainNet (Peng et al. 2019), the reference's "DomainNet-Real": 345 classes, 6 domains.

TFDS `domainnet/<domain>` 1.0.0, one config per domain. Despite its name the reference
(builders/domainnet.py) trains on five domains and tests on the sixth: train = TFDS train of
real, painting, clipart, quickdraw, infograph (concatenated in that order); dev = their TFDS
test splits (same order); dev_test = sketch TFDS train; test = sketch TFDS test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import DOMAINNET_TRAIN, Label, TfdsHandler, held_out_domain

HANDLER = TfdsHandler(
    key="domainnet",
    name="DomainNet-Real",
    year=2019,
    tfds_name="domainnet/real",
    tfds_version="1.0.0",
    recipe=held_out_domain("domainnet", DOMAINNET_TRAIN, "sketch"),
    label=Label("label"),
    homepage="http://ai.bu.edu/M3SDA/",
    num_classes=345,
    catalog_source="domainnet",
)
