import subprocess
import sys

import pytest

from nevis.streams import PredictionEvent, TrainingEvent, make_stream
from nevis.streams.catalog import variants
from nevis.tasks import TaskKind


def test_full_stream_matches_the_reference_counts():
    full = make_stream("full")
    assert len(full.tasks) == 106 and len(full.unique_tasks()) == 97
    assert list(full.years) == sorted(full.years)  # chronological
    dev = make_stream("full", stop_year=2020)
    assert len(dev.tasks) == 92 and len(dev.unique_tasks()) == 85
    assert max(dev.years) == 2019
    multi = [t for t in full.tasks if t.kind == TaskKind.MULTI_LABEL]
    assert len(multi) == 9 and len({t.key for t in multi}) == 9


def test_variants_and_repeats():
    counts = {name: len(v) for name, v in variants().items()}
    assert counts == {"full": 106, "short": 29, "tiny": 7, "debug": 2, "imagenet_only": 1,
                      "major_domain_only": 70, "large_dataset_only": 67}
    tiny = make_stream("tiny")
    keys = [t.key for t in tiny.tasks]
    assert keys.count("mnist") == 2  # a repeat keeps its dataset key
    assert [t.key for t in make_stream("debug").tasks] == ["voc_2007", "coil20"]


def test_events_order_and_final_evaluation():
    stream = make_stream("tiny", prediction_splits=("dev", "dev_test"))
    events = stream.events()
    assert isinstance(events[0], TrainingEvent)
    assert [e.split for e in events[1:3]] == ["dev", "dev_test"]
    final = [e for e in events if isinstance(e, PredictionEvent) and e.final]
    assert len(final) == 2 * len(stream.unique_tasks())
    mnist_final = next(e for e in final if e.task.key == "mnist")
    assert mnist_final.year == max(y for t, y in zip(stream.tasks, stream.years, strict=True)
                                   if t.key == "mnist")
    assert not any(e.final for e in make_stream("tiny", final_evaluation=False).events()
                   if isinstance(e, PredictionEvent))


def test_embedded_stream_is_chronological_and_varied():
    stream = make_stream("embedded")
    assert len(stream.tasks) >= 6
    assert list(stream.years) == sorted(stream.years)
    assert {t.kind for t in stream.tasks} == {TaskKind.SINGLE_LABEL, TaskKind.MULTI_LABEL}
    assert max(t.num_classes for t in stream.tasks) >= 50


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "nope"}, "valid choices: embedded, prepared, full"),
        ({"name": "full", "prediction_splits": ("train",)}, "valid choices: dev, dev_test, test"),
        ({"name": "debug", "tasks": ("mnist",)}, "valid choices: coil20, voc_2007"),
        ({"name": "full", "stop_year": 1900}, "has no tasks"),
    ],
)
def test_bad_stream_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_stream(**kwargs)


def test_listing_cli(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "nevis.streams", "--stream=tiny", f"--data_dir={tmp_path}"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "Caltech 101" in out and "not prepared" in out
    assert out.count("\n") >= 8
