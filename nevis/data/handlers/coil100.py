"""COIL-100 (Nene, Nayar & Murase 1996): 100 objects on a turntable, 72 colour views each.

TFDS `coil100` 2.0.0 (one split, train: 7,200 images of 128×128). Label = `object_id`
(obj1..obj100); the split is the view-angle bin `angle_label` (5° steps, 0..71), as in the
reference (builders/coil100.py): train bins 70, 71, 0, 1, 2 (frontal views), dev 16..20, dev_test
50..54, test the other 57 bins.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Label, TfdsHandler, view_bins

HANDLER = TfdsHandler(
    key="coil100",
    name="COIL 100",
    year=1996,
    tfds_name="coil100",
    tfds_version="2.0.0",
    recipe=view_bins(),
    label=Label("object_id"),
    homepage="https://www.cs.columbia.edu/CAVE/software/softlib/coil-100.php",
    num_classes=100,
)
