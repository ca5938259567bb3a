"""The console script pauses the garbage collector while a command loads its libraries, and every
command that reads data resumes it (frozen libraries, collector on) before its work starts.

Each command's work function is replaced by a probe that records the collector's state, in one
subprocess whose `project` package is the example's (the test process's own collector is left
alone)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import EXAMPLE, tool_env

# command line -> the function doing its work (replaced by the probe)
COMMANDS = {
    "ingest": "mlci.pipeline.ingest:ingest",
    "validate": "mlci.pipeline.validate:run",
    "split": "mlci.pipeline.split:split",
    "tune": "mlci.pipeline.tune:run",
    "train": "mlci.pipeline.train:run",
    "evaluate": "mlci.pipeline.evaluate:run",
    "report --base main": "mlci.review.report:write",
    "gate --base main": "mlci.review.report:compare",
    "pr-check --base main": "mlci.history:stale_stages",
    "drift --current x.csv": "mlci.monitoring.drift:run",
    "monitor --current x.csv": "mlci.monitoring.monitor:run",
    "predict --input x.csv --output y.parquet": "mlci.serving.batch:predict",
    "adopt --data x.csv --target y": "mlci.adopt.run:adopt",
    "retrain": "mlci.monitoring.retrain:retrain",
}

PROBE = """
import gc, importlib, json, sys
from mlci import cli, startup

def probe(*args, **kwargs):
    raise SystemExit(json.dumps([gc.isenabled(), gc.get_freeze_count() > 0]))

seen = {"as is": {}, "paused": {}}
for mode, found in seen.items():
    for line, target in json.loads(sys.argv[1]).items():
        module, name = target.split(":")
        setattr(importlib.import_module(module), name, probe)
        gc.unfreeze()
        if mode == "paused":
            startup.pause()
        try:
            cli.main(line.split())
            found[line] = "returned without reaching its work"
        except SystemExit as reached:
            found[line] = json.loads(str(reached))
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def states() -> dict[str, dict[str, object]]:
    """Both modes in one process: as it is, then paused as the console script does."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(COMMANDS)],
        cwd=EXAMPLE,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_every_data_command_resumes_collection_before_its_work(states: dict) -> None:
    seen = states["paused"]
    # collector on, and the loaded libraries frozen (later collections skip them)
    assert seen == {line: [True, True] for line in COMMANDS}


def test_main_called_from_python_leaves_the_collector_alone(states: dict) -> None:
    seen = states["as is"]
    assert seen == {line: [True, False] for line in COMMANDS}
