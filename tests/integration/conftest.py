"""Session fixture `lab`: a small rehearsal lab of real servers for the integration tests.

oltp primary + 2 streaming standbys (synchronous quorum) + PgBouncer, built with
playbooks/lab.yml from its own inventory (tests/lablib.py) on its own ports and
lab_root, so it never collides with a lab brought up by `make rehearse`.
Override with DBOPS_LAB_TEST_PORT_BASE (default 5600; PgBouncer on base + 1000 = 6600)
and DBOPS_LAB_TEST_ROOT. It is torn down at the end of the session, also when
tests fail. Sessions of other checkouts on the same machine wait for it (an
exclusive lock on <lab_root>.lock). Tests marked `lab_teardown` (they remove the
lab themselves) run last.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lablib

LAB_TEST_PORT_BASE = int(os.environ.get("DBOPS_LAB_TEST_PORT_BASE", "5600"))
LAB_TEST_ROOT = os.environ.get("DBOPS_LAB_TEST_ROOT", "/var/tmp/penguinmails-dbops-lab-pytest")


def pytest_configure(config):
    config.addinivalue_line("markers", "lab_teardown: removes the session lab; runs after every other test")
    config.addinivalue_line(
        "markers",
        "after_pause_tests: leaves the session lab's PgBouncer answering a later PAUSE before its queries"
        " finish (seen on 1.18 after RECONNECT and WAIT_CLOSE); runs after the other tests, before teardown",
    )


def pytest_collection_modifyitems(config, items):
    """Keep collection order; move the tests that spoil PAUSE, then those that remove the session lab, to the end."""
    items.sort(
        key=lambda item: (
            item.get_closest_marker("lab_teardown") is not None,
            item.get_closest_marker("after_pause_tests") is not None,
        )
    )


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """The session's lab, up and converged; yields a lablib.Lab."""
    lablib.require_binaries()
    lab = lablib.write_inventory(
        tmp_path_factory.mktemp("lab-inventory"),
        tiers={"oltp": 2},
        port_base=LAB_TEST_PORT_BASE,
        lab_root=LAB_TEST_ROOT,
    )
    # Another checkout's test session on this machine uses the same ports and
    # lab_root: take turns rather than tear down each other's servers.
    with lablib.running(lab, LAB_TEST_ROOT + ".lock"):
        yield lab
