"""Any datasets prepared with `python -m nevis.prepare`, in the order you list them.

    python -m nevis.prepare --dataset=folder:~/data/birds --key=birds
    python -m nevis.run --stream=prepared --config.stream.tasks=birds,coil20,mnist

Each task's name, year, kind and class count come from its prepared dataset's manifest.
"""

from ml_collections import ConfigDict


def get_config() -> ConfigDict:
    return ConfigDict({
        "name": "prepared",
        "stop_year": 0,  # 0: keep every year
        "prediction_splits": ("dev_test",),
        "final_evaluation": True,
        "tasks": "",  # comma-separated dataset keys, in stream order (required)
    })
