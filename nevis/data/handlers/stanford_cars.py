"""Stanford Cars (Krause, Stark, Deng & Fei-Fei, "3D Object Representations for Fine-Grained
Categorization", 3dRR workshop at ICCV 2013): 196 car models (make, model, year).

Raw files (md5 published by the reference): `car_ims.tgz` with the 16,185 JPEGs at
`car_ims/<6 digits>.jpg`, and `cars_annos.mat` (MATLAB v5) holding `annotations`, a 1 × N
struct array with fields relative_im_path (`car_ims/000001.jpg`), bbox_x1, bbox_y1, bbox_x2,
bbox_y2, class (1..196) and test (0 = official train, 1 = official test), and `class_names`.

The origin (ai.stanford.edu/~jkrause) has been offline since 2023: both sources are marked dead,
so the files come from --manual_dir or --mirror (the md5s still verify them).

Label rule: class - 1, names in the reference's label list order (which is the order of
`class_names` in the annotation file). Images are matched to annotations by file name, as the
reference does; the bounding boxes are not used (whole images, as the reference).
Recipe: `official_test()`: official train → 70/15/15 train/dev/dev_test; official test → test.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import scipy.io

from nevis.data import fixtures, recipes
from nevis.data.handlers.base import BuildContext, Built, Handler
from nevis.data.sources import PrepareError, Url

IMAGES_ARCHIVE = "car_ims.tgz"
ANNOTATIONS = "cars_annos.mat"

CLASS_NAMES = (
    "AM General Hummer SUV 2000", "Acura RL Sedan 2012", "Acura TL Sedan 2012",
    "Acura TL Type-S 2008", "Acura TSX Sedan 2012", "Acura Integra Type R 2001",
    "Acura ZDX Hatchback 2012", "Aston Martin V8 Vantage Convertible 2012",
    "Aston Martin V8 Vantage Coupe 2012", "Aston Martin Virage Convertible 2012",
    "Aston Martin Virage Coupe 2012", "Audi RS 4 Convertible 2008", "Audi A5 Coupe 2012",
    "Audi TTS Coupe 2012", "Audi R8 Coupe 2012", "Audi V8 Sedan 1994", "Audi 100 Sedan 1994",
    "Audi 100 Wagon 1994", "Audi TT Hatchback 2011", "Audi S6 Sedan 2011",
    "Audi S5 Convertible 2012", "Audi S5 Coupe 2012", "Audi S4 Sedan 2012", "Audi S4 Sedan 2007",
    "Audi TT RS Coupe 2012", "BMW ActiveHybrid 5 Sedan 2012", "BMW 1 Series Convertible 2012",
    "BMW 1 Series Coupe 2012", "BMW 3 Series Sedan 2012", "BMW 3 Series Wagon 2012",
    "BMW 6 Series Convertible 2007", "BMW X5 SUV 2007", "BMW X6 SUV 2012", "BMW M3 Coupe 2012",
    "BMW M5 Sedan 2010", "BMW M6 Convertible 2010", "BMW X3 SUV 2012", "BMW Z4 Convertible 2012",
    "Bentley Continental Supersports Conv. Convertible 2012", "Bentley Arnage Sedan 2009",
    "Bentley Mulsanne Sedan 2011", "Bentley Continental GT Coupe 2012",
    "Bentley Continental GT Coupe 2007", "Bentley Continental Flying Spur Sedan 2007",
    "Bugatti Veyron 16.4 Convertible 2009", "Bugatti Veyron 16.4 Coupe 2009",
    "Buick Regal GS 2012", "Buick Rainier SUV 2007", "Buick Verano Sedan 2012",
    "Buick Enclave SUV 2012", "Cadillac CTS-V Sedan 2012", "Cadillac SRX SUV 2012",
    "Cadillac Escalade EXT Crew Cab 2007", "Chevrolet Silverado 1500 Hybrid Crew Cab 2012",
    "Chevrolet Corvette Convertible 2012", "Chevrolet Corvette ZR1 2012",
    "Chevrolet Corvette Ron Fellows Edition Z06 2007", "Chevrolet Traverse SUV 2012",
    "Chevrolet Camaro Convertible 2012", "Chevrolet HHR SS 2010", "Chevrolet Impala Sedan 2007",
    "Chevrolet Tahoe Hybrid SUV 2012", "Chevrolet Sonic Sedan 2012",
    "Chevrolet Express Cargo Van 2007", "Chevrolet Avalanche Crew Cab 2012",
    "Chevrolet Cobalt SS 2010", "Chevrolet Malibu Hybrid Sedan 2010",
    "Chevrolet TrailBlazer SS 2009", "Chevrolet Silverado 2500HD Regular Cab 2012",
    "Chevrolet Silverado 1500 Classic Extended Cab 2007", "Chevrolet Express Van 2007",
    "Chevrolet Monte Carlo Coupe 2007", "Chevrolet Malibu Sedan 2007",
    "Chevrolet Silverado 1500 Extended Cab 2012", "Chevrolet Silverado 1500 Regular Cab 2012",
    "Chrysler Aspen SUV 2009", "Chrysler Sebring Convertible 2010",
    "Chrysler Town and Country Minivan 2012", "Chrysler 300 SRT-8 2010",
    "Chrysler Crossfire Convertible 2008", "Chrysler PT Cruiser Convertible 2008",
    "Daewoo Nubira Wagon 2002", "Dodge Caliber Wagon 2012", "Dodge Caliber Wagon 2007",
    "Dodge Caravan Minivan 1997", "Dodge Ram Pickup 3500 Crew Cab 2010",
    "Dodge Ram Pickup 3500 Quad Cab 2009", "Dodge Sprinter Cargo Van 2009",
    "Dodge Journey SUV 2012", "Dodge Dakota Crew Cab 2010", "Dodge Dakota Club Cab 2007",
    "Dodge Magnum Wagon 2008", "Dodge Challenger SRT8 2011", "Dodge Durango SUV 2012",
    "Dodge Durango SUV 2007", "Dodge Charger Sedan 2012", "Dodge Charger SRT-8 2009",
    "Eagle Talon Hatchback 1998", "FIAT 500 Abarth 2012", "FIAT 500 Convertible 2012",
    "Ferrari FF Coupe 2012", "Ferrari California Convertible 2012",
    "Ferrari 458 Italia Convertible 2012", "Ferrari 458 Italia Coupe 2012",
    "Fisker Karma Sedan 2012", "Ford F-450 Super Duty Crew Cab 2012",
    "Ford Mustang Convertible 2007", "Ford Freestar Minivan 2007", "Ford Expedition EL SUV 2009",
    "Ford Edge SUV 2012", "Ford Ranger SuperCab 2011", "Ford GT Coupe 2006",
    "Ford F-150 Regular Cab 2012", "Ford F-150 Regular Cab 2007", "Ford Focus Sedan 2007",
    "Ford E-Series Wagon Van 2012", "Ford Fiesta Sedan 2012", "GMC Terrain SUV 2012",
    "GMC Savana Van 2012", "GMC Yukon Hybrid SUV 2012", "GMC Acadia SUV 2012",
    "GMC Canyon Extended Cab 2012", "Geo Metro Convertible 1993", "HUMMER H3T Crew Cab 2010",
    "HUMMER H2 SUT Crew Cab 2009", "Honda Odyssey Minivan 2012", "Honda Odyssey Minivan 2007",
    "Honda Accord Coupe 2012", "Honda Accord Sedan 2012", "Hyundai Veloster Hatchback 2012",
    "Hyundai Santa Fe SUV 2012", "Hyundai Tucson SUV 2012", "Hyundai Veracruz SUV 2012",
    "Hyundai Sonata Hybrid Sedan 2012", "Hyundai Elantra Sedan 2007", "Hyundai Accent Sedan 2012",
    "Hyundai Genesis Sedan 2012", "Hyundai Sonata Sedan 2012",
    "Hyundai Elantra Touring Hatchback 2012", "Hyundai Azera Sedan 2012",
    "Infiniti G Coupe IPL 2012", "Infiniti QX56 SUV 2011", "Isuzu Ascender SUV 2008",
    "Jaguar XK XKR 2012", "Jeep Patriot SUV 2012", "Jeep Wrangler SUV 2012",
    "Jeep Liberty SUV 2012", "Jeep Grand Cherokee SUV 2012", "Jeep Compass SUV 2012",
    "Lamborghini Reventon Coupe 2008", "Lamborghini Aventador Coupe 2012",
    "Lamborghini Gallardo LP 570-4 Superleggera 2012", "Lamborghini Diablo Coupe 2001",
    "Land Rover Range Rover SUV 2012", "Land Rover LR2 SUV 2012", "Lincoln Town Car Sedan 2011",
    "MINI Cooper Roadster Convertible 2012", "Maybach Landaulet Convertible 2012",
    "Mazda Tribute SUV 2011", "McLaren MP4-12C Coupe 2012",
    "Mercedes-Benz 300-Class Convertible 1993", "Mercedes-Benz C-Class Sedan 2012",
    "Mercedes-Benz SL-Class Coupe 2009", "Mercedes-Benz E-Class Sedan 2012",
    "Mercedes-Benz S-Class Sedan 2012", "Mercedes-Benz Sprinter Van 2012",
    "Mitsubishi Lancer Sedan 2012", "Nissan Leaf Hatchback 2012", "Nissan NV Passenger Van 2012",
    "Nissan Juke Hatchback 2012", "Nissan 240SX Coupe 1998", "Plymouth Neon Coupe 1999",
    "Porsche Panamera Sedan 2012", "Ram C/V Cargo Van Minivan 2012",
    "Rolls-Royce Phantom Drophead Coupe Convertible 2012", "Rolls-Royce Ghost Sedan 2012",
    "Rolls-Royce Phantom Sedan 2012", "Scion xD Hatchback 2012", "Spyker C8 Convertible 2009",
    "Spyker C8 Coupe 2009", "Suzuki Aerio Sedan 2007", "Suzuki Kizashi Sedan 2012",
    "Suzuki SX4 Hatchback 2012", "Suzuki SX4 Sedan 2012", "Tesla Model S Sedan 2012",
    "Toyota Sequoia SUV 2012", "Toyota Camry Sedan 2012", "Toyota Corolla Sedan 2012",
    "Toyota 4Runner SUV 2012", "Volkswagen Golf Hatchback 2012", "Volkswagen Golf Hatchback 1991",
    "Volkswagen Beetle Hatchback 2012", "Volvo C30 Hatchback 2012", "Volvo 240 Sedan 1993",
    "Volvo XC90 SUV 2007", "smart fortwo Convertible 2012",
)


def read_annotations(path: Path) -> list[tuple[str, int, str]]:
    """(image file name, label 0..195, "train" or "test") per annotation of cars_annos.mat."""
    annotations = np.atleast_1d(scipy.io.loadmat(path, squeeze_me=True)["annotations"])
    rows = []
    for record in annotations:
        relative = str(record["relative_im_path"])
        label = int(record["class"]) - 1
        if not 0 <= label < len(CLASS_NAMES):
            raise PrepareError(f"stanford_cars: {relative} has class {label + 1}, outside "
                               f"1..{len(CLASS_NAMES)}.")
        rows.append((Path(relative).name, label, "test" if int(record["test"]) else "train"))
    return rows


def build(ctx: BuildContext) -> Built:
    rows = read_annotations(ctx.path(ANNOTATIONS))
    root = ctx.extract(IMAGES_ARCHIVE)
    images = {p.name: p for p in root.rglob("*.jpg") if p.is_file()}
    missing = [name for name, _, _ in rows if name not in images]
    if missing:
        raise PrepareError(f"stanford_cars: {len(missing)} annotated images are not in "
                           f"{IMAGES_ARCHIVE} (first: {missing[0]}).")
    items = [recipes.Item(images[name], label, group=group, name=name)
             for name, label, group in rows]
    counts = {g: sum(group == g for _, _, group in rows) for g in ("train", "test")}
    return Built(CLASS_NAMES, items, recipes.official_test(), channels=3,
                 metadata={"images_per_official_split": counts})


def write_fixture(folder: Path) -> None:
    rng = np.random.default_rng(196)
    classes = (1, 2, 97, 196)  # a few of the 196 classes (1-based, as in the file)
    members, records = {}, []
    for c in classes:
        for k in range(6):
            name = f"car_ims/{len(records) + 1:06d}.jpg"
            members[name] = fixtures.image_bytes(rng, "JPEG", (16, 24))
            records.append((name, 1, 2, 20, 14, c, int(k >= 4)))  # 4 train, 2 test per class
    fixtures.write_tar(folder / IMAGES_ARCHIVE, members)
    fields = ("relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test")
    annotations = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        annotations[0, i] = (record[0], *(np.array([[v]], dtype=np.uint8) for v in record[1:]))
    class_names = np.empty((1, len(CLASS_NAMES)), dtype=object)
    class_names[0, :] = CLASS_NAMES
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"annotations": annotations, "class_names": class_names})
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, nevis fixture".ljust(116)  # no creation time
    (folder / ANNOTATIONS).write_bytes(bytes(data))


_SITE = "http://ai.stanford.edu/~jkrause/car196/"

HANDLER = Handler(
    key="stanford_cars",
    name="Stanford Cars",
    year=2013,
    sources=(
        Url(_SITE + IMAGES_ARCHIVE, md5="d5c8f0aa497503f355e17dc7886c3f14", dead=True),
        Url(_SITE + ANNOTATIONS, md5="b407c6086d669747186bd1d764ff9dbc", dead=True),
    ),
    build=build,
    write_fixture=write_fixture,
    homepage="http://ai.stanford.edu/~jkrause/cars/car_dataset.html",
    num_classes=196,
)
