"""A new user's path, end to end, offline: fixture mirror → prepare a NEVIS'22 stream → run it.

The same commands a user types against the real internet, with `--mirror` pointing at the
handlers' fixtures (as an institution's mirror would) and `--verify_checksums=false`.
"""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, run_cli


def _module(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=600)


def _statuses(listing: str) -> list[str]:
    """The data column of `python -m nevis.streams`'s task rows."""
    rows = [line for line in listing.splitlines() if line[:1].isdigit() and "tasks (" not in line]
    return [line.split("  ")[-1].strip() for line in rows]


def test_debug_stream_from_a_fixture_mirror_runs_to_a_summary(tmp_path):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    out = _module("nevis.prepare", "--stream=debug", f"--write_fixtures={mirror}")
    assert out.returncode == 0, out.stderr
    listing = _module("nevis.streams", "--stream=debug", f"--data_dir={data}")
    assert _statuses(listing.stdout) == ["not prepared", "not prepared"]

    prepared = _module("nevis.prepare", "--stream=debug", f"--mirror={mirror}",
                       "--verify_checksums=false", f"--data_dir={data}",
                       f"--download_dir={tmp_path / 'raw'}", "--noprogress")
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    assert prepared.stdout.count("prepared now") == 2 and "unverified" in prepared.stdout
    listing = _module("nevis.streams", "--stream=debug", f"--data_dir={data}")
    assert _statuses(listing.stdout) == ["ready (unverified)"] * 2, listing.stdout

    run = tmp_path / "run"
    run_cli("--learner=independent", "--stream=debug", "--config.learner.max_steps=2",
            "--config.learner.image_size=16", "--config.learner.eval_batch_size=64",
            f"--data_dir={data}", f"--workdir={run}", "--noprogress")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["complete"] and summary["events_completed"] == summary["events_total"]
    records = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    predicted = {r["task"] for r in records if r["event"] == "predict" and r["status"] == "ok"}
    assert predicted == {"voc_2007", "coil20"}  # a multi-label TFDS task and a custom one
