"""Aberdeen face database (Ian Craw, University of Aberdeen; distributed by the Psychological Image
Collection at Stirling, PICS): 687 colour face images, 1 to 18 per person, in varied lighting
and viewpoint. There is no dataset paper; the year is the catalog's (1992).

Raw file: `Aberdeen.zip` (PICS, md5 published by the reference): the images at the top of the
archive, named `<person><number>.jpg` (e.g. `neil3.jpg`, `clean_adrian2.jpg`).

Label rule (identity, the reference's): the person is the first run of letters and underscores
of the file stem; eight names are a second series of an identity and are merged into it
(`marieg` → `marie`, `heatherg` → `heather`, `kayg` → `kay`, `neilg` → `neil`, `graemeg` →
`graeme`, `dhawleyg` → `dhawley`, `clean_adrian` → `adrian`, `jsheenang` → `jsheenan`). The
label is the name's position in the reference's list of 92 names (CLASS_NAMES). That list still
holds `jsheenang`, which the merge empties: class 22 has no example (kept so that indices and
the catalog's 92 classes stay the reference's), so 91 identities are learnt where PICS
describes 90 people (not checked against the archive). A name outside the list stops the build.
Recipe: no official split → random 56/12/12/20 (`random_split()`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

ARCHIVE = "Aberdeen.zip"
_NAME = re.compile(r"[a-zA-Z_]+")
_NOT_IMAGES = {"thumbs.db", ".ds_store"}

# A second series of photographs of one person, merged into that person.
MERGED = {
    "marieg": "marie", "heatherg": "heather", "kayg": "kay", "neilg": "neil",
    "graemeg": "graeme", "dhawleyg": "dhawley", "clean_adrian": "adrian",
    "jsheenang": "jsheenan",
}

# The reference's label list (index = label); `jsheenang` (22) is merged away and stays empty.
CLASS_NAMES = (
    "neil", "jenni", "chris_harbron", "john_mccal", "blaw", "dpearson", "ruth",
    "richard_hardwick", "olive", "dlow", "simon", "dougal_grant", "mnicholson", "hack",
    "caroline", "lynn", "adrian", "kay", "fiona_hogarth", "annanena", "heather", "barry",
    "jsheenang", "michael", "alister", "amellanby", "george", "graham_brown", "itaylor", "marie",
    "david", "jim", "alison", "trevor", "iroy", "scott", "louise", "dsmith", "gfindley", "irene",
    "tracy", "johannes", "chris_pin", "anon_one", "stewart", "lynn_james", "peter", "paul",
    "pkyle", "andrew", "mmanson", "graeme", "fiona", "ghall", "paol", "david_imray", "john_thom",
    "stephen", "gordon", "gillian", "dhands", "joanna", "nick", "bfegan", "grant_cumming", "alec",
    "milly", "merilyn", "kirsty", "peter_macgeorge", "dbell", "chris", "miranda", "johnny_page",
    "pat", "terry_johnstone", "tock", "catherine", "blair", "kieran", "martin", "hin", "meggan",
    "jsheenan", "brian_ho", "mark", "dhawley", "derek", "lisa", "ian", "kim", "dave_faquhar",
)
_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}


def person_of(filename: str) -> str:
    """The identity a file shows: the stem's first run of letters/underscores, merged."""
    match = _NAME.search(Path(filename).stem)
    if match is None:
        raise PrepareError(f"aberdeen: no person name in the file name {filename!r}.")
    return MERGED.get(match.group(0), match.group(0))


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    items, unknown = [], set()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        if not path.is_file() or path.name.lower() in _NOT_IMAGES or path.name.startswith("._"):
            continue
        person = person_of(path.name)
        if person not in _INDEX:
            unknown.add(person)
            continue
        items.append(recipes.Item(path, _INDEX[person], name=path.relative_to(root).as_posix()))
    if unknown:
        raise PrepareError(f"aberdeen: names outside the label list: {sorted(unknown)}.")
    if not items:
        raise PrepareError(f"aberdeen: no images in {ARCHIVE}.")
    people = len({item.label for item in items})
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3,
                 metadata={"images": len(items), "people_with_images": people})


def write_fixture(folder: Path) -> None:
    """10 people with 6 photographs each; two of them partly under a merged second name."""
    rng = np.random.default_rng(1992)
    members = {}
    people = ("neil", "chris_harbron", "adrian", "kay", "jsheenan", "marie", "anon_one",
              "dave_faquhar", "ruth", "john_thom")
    second = {"neil": "neilg", "adrian": "clean_adrian", "jsheenan": "jsheenang", "kay": "kayg"}
    for person in people:
        for n in range(1, 7):
            name = second[person] if person in second and n > 4 else person
            size = (20, 16) if n % 2 else (16, 20)
            members[f"{name}{n}.jpg"] = fixtures.image_bytes(rng, "JPEG", size)
    fixtures.write_zip(folder / ARCHIVE, members)


HANDLER = Handler(
    key="aberdeen",
    name="Aberdeen face database.",
    year=1992,
    sources=(Url("http://pics.stir.ac.uk/zips/Aberdeen.zip",
                 md5="1f7044bd5f0bed01286263aa580a7a87"),),
    build=build,
    write_fixture=write_fixture,
    homepage="http://pics.stir.ac.uk/2D_face_sets.htm",
    num_classes=92,
)
