"""NEVIS'22 streams: every published variant; years strictly before `stop_year` are streamed.

    python -m nevis.run --stream=full        # or short, tiny, debug, imagenet_only,
                                             # major_domain_only, large_dataset_only

stop_year 2020 keeps 2020–2021 back for the final run, as in NEVIS'22 (92 of 106 entries of
FULL); use --config.stream.stop_year=2022 for every year. Datasets must be prepared first:
`python -m nevis.streams --stream=full` shows which are.
"""

from ml_collections import ConfigDict


def get_config(variant: str = "full") -> ConfigDict:
    return ConfigDict({
        "name": variant,
        "stop_year": 2020,
        "prediction_splits": ("dev_test",),
        "final_evaluation": True,
        "tasks": "",  # comma-separated dataset keys; empty: all
    })
