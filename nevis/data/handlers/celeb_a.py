"""CelebA (Liu et al. 2015): celebrity faces with 40 binary attributes, as multi-label.

TFDS `celeb_a` 2.1.0 (train 162,770 / validation 19,867 / test 19,962). Labels = the attributes
that are true, in the reference's order (builders/tfds_builder.py, `_CELEB_A_ATTRIBUTES`; also
TFDS's sorted order), read from the flat keys `attributes/<name>`. Recipe: TFDS train → first
80% train / rest dev (index order); validation → dev_test; test → test.
"""

from __future__ import annotations

from nevis.data.handlers.tfds_backed import Attributes, TfdsHandler, train_validation_test
from nevis.tasks import TaskKind

ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)

HANDLER = TfdsHandler(
    key="celeb_a",
    name="CelebA",
    year=2015,
    tfds_name="celeb_a",
    tfds_version="2.1.0",
    recipe=train_validation_test(0.8),
    label=Attributes(ATTRIBUTES),
    homepage="https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
    num_classes=40,
    kind=TaskKind.MULTI_LABEL,
)
