"""The embedded stream: small real and procedural datasets that build offline in seconds.

    python -m nevis.run --stream=embedded

Datasets are built into $NEVIS_DATA_DIR on first use. `tasks` restricts the stream to some
dataset keys, e.g. --config.stream.tasks=uci_digits,lfw_faces.
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    return ConfigDict({
        "name": "embedded",
        "stop_year": 0,  # 0: keep every year
        "prediction_splits": ("dev_test",),
        "final_evaluation": True,
        "tasks": "",  # comma-separated dataset keys; empty: all
    })
