"""AnimalWeb (Khan et al., "AnimalWeb: A Large-Scale Hierarchical Dataset of Annotated Animal
Faces", CVPR 2020): about 22,000 animal faces of several hundred species, annotated with 9
facial landmarks.

Raw file: `animal_dataset_v1_c.rar` (Google Drive, md5 published by the reference), a compressed
RAR archive, extracted by `nevis.data.archives` (libarchive). It holds `<species>_<n>.jpg` images
(and landmark files, not read). The reference extracts it flat (`unrar e`), so images of the same
file name overwrite each other: here the images are found at any depth and one is kept per file
name (the first in path order; the metadata counts the others).

Classes: the reference's list of 352 species names (CLASS_NAMES, index = position; it includes
odd names such as "animal", "uc", "colo", kept as they are). Label rule: the file name up to its
first "_". Recipe: random 56/12/12/20 (`random_split()`), after the pipeline's exact-duplicate
removal (the reference deduplicates too).

Unverified: the folder layout inside the archive (the reference flattens it, so any works here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import GoogleDrive, PrepareError

ARCHIVE = "animal_dataset_v1_c.rar"
CLASS_NAMES = (
    "saluki", "kultarr", "bighornsheep", "bandedmongoose", "fox", "goat", "tasmaniandevil",
    "wallaroo", "whiptailwallaby", "feralhorse", "binturong", "geoffroyscat", "klipspringer",
    "vervetmonkey", "possum", "arcticwolf", "rustyspottedgenet", "capegraymongoose", "elk",
    "commonbrownlemur", "panda", "amurtiger", "quokka", "indri", "debrazzasmonkey",
    "collaredpeccary", "cloudedleopard", "emperorpenguin", "zebu", "wildcat", "lionpd",
    "walrus", "irishwolfhound", "hoodedseal", "camel", "patasmonkey", "commongenet",
    "italiangreyhound", "viverratangalungamalayancivet", "bullmastif", "blackbackedjackal",
    "pekingesedog", "lumholtzstreekangaroo", "komondor", "toquemacaque", "longnosedmongoose",
    "matschiestreekangaroo", "woodchuck", "slendermongoose", "gundi", "animal", "feralcat",
    "chamois", "borneanslowloris", "dachshund", "yelloweyedpenguin", "harpseal", "bharal",
    "blueeyedblacklemur", "treeshrew", "dallsheep", "brushtailedrockwallaby", "marmoset",
    "goldenbamboolemur", "greaterbamboolemur", "balinesecat", "californiansealion",
    "fallowdeer", "adeliepenguin", "waterbuck", "mareebarockwallaby", "horse", "zebra",
    "blackrhino", "australianterrier", "wildebeest", "monte", "oncilla", "armadillo",
    "frenchbulldog", "swamprabbit", "cheetah", "gentoopenguin", "greylangur", "mouflon",
    "alaskanmalamute", "amurleopard", "dhole", "baikalseal", "brownrat", "kingpenguin",
    "redpanda", "hamster", "echidna", "bushbaby", "fishingcat", "westernlesserbamboolemur",
    "beardedseal", "colo", "roanantelope", "harbourseal", "chinstrappenguin", "giantschnauzer",
    "collaredbrownlemur", "stripedhyena", "opossum", "guanaco", "wisent", "visayanwartypig",
    "barbarymacaque", "onager", "caiman", "feralgoat", "commonwarthog", "hartebeest",
    "arcticfox", "whiteheadedlemur", "spottedseal", "capebuffalo", "medraneanmonkseal",
    "jaguar", "wildass", "barbarysheep", "gibbons", "spottedhyena", "leopardcat", "hedgehog",
    "uc", "topi", "commonchimpanzee", "dunnart", "agilewallaby", "sundaslowloris", "wombat",
    "chinesegoral", "caribou", "weddellseal", "canadianlynx", "husky", "liger",
    "sharpesgrysbok", "graywolf", "hare", "caracal", "hyrax", "platypus", "capefox",
    "eurasianlynx", "oribi", "northernelephantseal", "centralchimpanzee", "dormouse", "gerbil",
    "cougar", "capybara", "ferret", "przewalskihorse", "crestedpenguin", "oryx",
    "steinbucksteenbok", "nilgai", "mangabey", "australianshepherd", "spidermonkey", "monkey",
    "brownhyena", "roedeer", "bull", "pardinegenet", "anoa", "leopard", "swampwallaby",
    "bonobo", "cottonrat", "vole", "humboldtpenguin", "africanpenguin", "goldenjackal",
    "gorilla", "commonkusimanse", "redtailmonkey", "aardwolf", "suni",
    "blackandwhiteruffedlemar", "chowchow", "raccoon", "bolognesedog", "kangaroo", "dalmatian",
    "gharial", "australiancattledog", "ruddymongoose", "nightmonkey", "swiftfox", "weasel",
    "easternchimpanzee", "bison", "yak", "chital", "titi", "woollymonkey", "reedbuck",
    "pallascat", "smallasianmongoose", "grizzlybear", "rustyspottedcat", "coatis",
    "redruffedlemur", "kinkajou", "parmawallaby", "coypu", "westernchimpanzee",
    "asianpalmcivet", "domesticcat", "giantotter", "pygmyrabbit", "grayfox", "kiang",
    "pademelon", "lemur", "wapiti", "asiangoldencat", "agouti", "bandedpalmcivet",
    "fieldmouse", "junglecat", "anteater", "mexicanwolf", "largespottedgenet",
    "beatingmongoose", "goodfellowstreekangaroo", "flyingsquirrel", "wolverine", "guineapig",
    "dassie", "orangutan", "greyseal", "ocelot", "howler", "germanpinscher", "koala", "bilby",
    "goldenretriever", "galagos", "leopardseal", "spottedneckedotter", "crownedlemur",
    "owstonspalmcivet", "donkey", "duiker", "pygmyslowloris", "cservalserval", "hippopotamus",
    "tamarin", "alaskanhare", "badger", "dingo", "boar", "goldenlangur", "greatdane",
    "jackrabbit", "uakari", "colobus", "fennecfox", "sandcat", "bamboolemur",
    "bengalslowloris", "dugong", "rhesusmonkey", "marshmongoose", "littlebluepenguin",
    "hogdeer", "redbelliedsquirrel", "commondwarfmongoose", "corsacfox", "whitewolf", "addax",
    "stripeneckedmongoose", "deermouse", "japanesemacaque", "giraffe", "babirusa",
    "hamadryasbaboon", "douclangur", "anatolianshepherddog", "bluemonkey", "muskox",
    "yellowfootedrockwallaby", "gerenuk", "doberman", "hawaiianmonkseal", "magellanicpenguin",
    "crabeaterseal", "bobcat", "feralcattle", "jaguarundi", "potoroo", "muntjacdeer",
    "geladababoon", "harvestmouse", "rhinoceros", "olivebaboon", "buffalo", "patagonianmara",
    "bushbuck", "blackbuck", "beaver", "zonkey", "bordercollie", "southernelephantseal",
    "tammarwallaby", "olingos", "quoll", "easternlesserbamboolemur", "bandicoot", "alpineibex",
    "redneckedwallaby", "bear", "japaneseserow", "galapagossealion", "muriqui",
    "blackfootedcat", "cacomistle", "ringtail", "germanshepherddog", "ribbonseal",
    "domesticdog", "lutung", "tarsiers", "margay", "bongo", "francoislangur", "potto",
    "whitetaileddeer", "australiansealion", "capuchinmonkey", "dikdik", "aardvark",
    "snowleopard", "banteng", "chihuahua", "proboscismonkey", "ayeaye", "pantanalcat",
    "ethiopianwolf", "africanwilddog", "deer", "alpaca", "servalinegenet", "chipmunk", "degu",
    "urial",
)


def label_of_file(name: str, label_of: dict[str, int]) -> int:
    species = name.rsplit(".", 1)[0].split("_")[0]
    if species not in label_of:
        raise PrepareError(f"animal_web: {name} names species {species!r}, which is not in the "
                           "reference's label list.")
    return label_of[species]


def build(ctx: BuildContext) -> Built:
    root = ctx.extract(ARCHIVE)
    label_of = {name: i for i, name in enumerate(CLASS_NAMES)}
    by_name: dict[str, Path] = {}
    shadowed = 0
    for path in sorted(root.rglob("*.jpg")):
        if not path.is_file() or path.name.startswith("._"):
            continue
        if path.name in by_name:
            shadowed += 1
            continue
        by_name[path.name] = path
    if not by_name:
        raise PrepareError(f"animal_web: no .jpg image in {ARCHIVE}.")
    items = [recipes.Item(path, label_of_file(name, label_of), name=name)
             for name, path in sorted(by_name.items())]
    return Built(CLASS_NAMES, items, recipes.random_split(), channels=3,
                 metadata={"images": len(items), "same_name_images_dropped": shadowed})


def write_fixture(folder: Path) -> None:
    """A stored (uncompressed) RAR archive: 4 species × 6 images with landmark files, one image
    repeated under another folder (dropped by name), one exact duplicate (removed later)."""
    rng = np.random.default_rng(2020)
    members: dict[str, bytes] = {}
    for species in ("saluki", "panda", "animal", "urial"):
        for i in range(1, 7):
            image = fixtures.image_bytes(rng, "JPEG", (20, 20))
            members[f"animal_dataset_v1_clean_check/{species}_{i}.jpg"] = image
            members[f"animal_dataset_v1_clean_check/{species}_{i}.pts"] = (
                "version: 1\nn_points: 9\n{\n" + "10 10\n" * 9 + "}\n").encode()
    members["animal_dataset_v1_clean_check/extra/saluki_1.jpg"] = fixtures.image_bytes(
        rng, "JPEG", (20, 20))
    members["animal_dataset_v1_clean_check/urial_7.jpg"] = members[
        "animal_dataset_v1_clean_check/urial_1.jpg"]
    fixtures.write_rar(folder / ARCHIVE, members)


HANDLER = Handler(
    key="animal_web",
    name="AnimalWeb",
    year=2020,
    sources=(GoogleDrive("13PbHxUofhdJLZzql3TyqL22bQJ3HwDK4", ARCHIVE,
                         md5="d2d7e0a584ee4bd9badc74a9f2ef3b82"),),
    build=build,
    write_fixture=write_fixture,
    homepage="https://fdmaproject.wordpress.com/author/fdmaproject/",
    num_classes=352,
)
