"""A real single-node SLURM cluster (tests/slurm/cluster.sh) for the tests in this folder.

The tests are skipped unless ``TWINFLOW_SLURM_TESTS=1`` (``make test-slurm`` sets it): they need
root, Debian's SLURM packages (installed by cluster.sh when missing) and a few minutes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CLUSTER_SH = HERE / "cluster.sh"
ENABLED = os.environ.get("TWINFLOW_SLURM_TESTS") == "1"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slurm: runs jobs on a local SLURM cluster (TWINFLOW_SLURM_TESTS=1)"
    )


def cluster_sh(*args: str, env: dict | None = None, check: bool = True):
    return subprocess.run(
        ["bash", str(CLUSTER_SH), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=check,
        timeout=600,
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> dict[str, str]:
    """Start the test cluster (or use one already running) and stop it afterwards if we started it.

    Returns the environment clients need (``SLURM_CONF``).
    """
    already = cluster_sh("status", check=False).returncode == 0
    started = cluster_sh("start", check=False)
    if started.returncode != 0:
        pytest.fail(f"cluster.sh start failed:\n{started.stdout}\n{started.stderr}")
    line = next(x for x in started.stdout.splitlines() if x.startswith("export SLURM_CONF="))
    env = {"SLURM_CONF": line.split("=", 1)[1]}
    yield env
    if not already:
        stopped = cluster_sh("stop", check=False)
        assert stopped.returncode == 0, f"cluster.sh stop failed:\n{stopped.stderr}"
