"""Of two runs that race for a tier's lock, exactly one holds it."""

import json
import threading

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import runlock


def test_racing_runs_get_exactly_one_lock(tmp_path):
    path = runlock.lock_path(str(tmp_path), "db_outage-oltp")
    outcomes = {}
    start = threading.Barrier(8)

    def run(owner):
        start.wait()
        outcomes[owner] = runlock.acquire(path, owner, "INC-1", ttl=60, wait=0)[0]

    threads = [threading.Thread(target=run, args=("run-%d" % number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()).count("acquired") == 1
    assert sorted(outcomes.values()).count("busy") == 7


def test_same_owner_reenters_and_release_is_owner_only(tmp_path):
    path = runlock.lock_path(str(tmp_path), "x")
    assert runlock.acquire(path, "a", "INC", ttl=60, wait=0)[0] == "acquired"
    assert runlock.acquire(path, "a", "INC", ttl=60, wait=0)[0] == "held"
    assert runlock.release(path, "b")[0] == "held_by_other"
    assert runlock.release(path, "a")[0] == "released"
    assert runlock.release(path, "a")[0] == "not_held"


def test_expired_lock_is_taken_over_and_the_old_holder_reported(tmp_path):
    path = runlock.lock_path(str(tmp_path), "x")
    with open(path, "w") as lock_file:
        json.dump({"owner": "dead-run", "expires_at": 1}, lock_file)
    outcome, holder = runlock.acquire(path, "new-run", "INC", ttl=60, wait=0)
    assert outcome == "took_over"
    assert holder["owner"] == "dead-run"
    assert runlock.read_holder(path)["owner"] == "new-run"


def test_busy_lock_names_its_holder(tmp_path):
    path = runlock.lock_path(str(tmp_path), "x")
    runlock.acquire(path, "first", "INC-7", ttl=60, wait=0)
    outcome, holder = runlock.acquire(path, "second", "INC-8", ttl=60, wait=0.2)
    assert outcome == "busy"
    assert "first" in runlock.describe_holder(holder)
    assert "INC-7" in runlock.describe_holder(holder)


def test_lock_names_cannot_escape_the_directory(tmp_path):
    assert runlock.lock_path(str(tmp_path), "../../etc/x").startswith(str(tmp_path))


def test_check_mode_preview_writes_nothing(tmp_path):
    lock_dir = tmp_path / "locks"
    path = runlock.lock_path(str(lock_dir), "x")
    assert runlock.preview(path, "a", "present") == ("would_acquire", None)
    assert runlock.preview(path, "a", "absent") == ("not_held", None)
    assert not lock_dir.exists()
    runlock.acquire(path, "a", "INC", ttl=60, wait=0)
    before = sorted(item.name for item in lock_dir.iterdir())
    assert runlock.preview(path, "a", "present")[0] == "held"
    assert runlock.preview(path, "b", "present")[0] == "busy"
    assert runlock.preview(path, "a", "absent")[0] == "would_release"
    assert runlock.preview(path, "b", "absent")[0] == "held_by_other"
    assert sorted(item.name for item in lock_dir.iterdir()) == before


def test_the_default_lock_dir_is_absolute():
    assert runlock.DEFAULT_LOCK_DIR.startswith("/")


def test_the_lock_dir_is_created_private_and_a_linked_one_is_refused(tmp_path):
    path = runlock.lock_path(str(tmp_path / "new"), "x")
    runlock.acquire(path, "a", "INC", ttl=60, wait=0)
    assert oct((tmp_path / "new").stat().st_mode & 0o777) == "0o700"
    (tmp_path / "link").symlink_to(tmp_path / "new")
    with pytest.raises(OSError, match="symbolic link"):
        runlock.acquire(runlock.lock_path(str(tmp_path / "link"), "y"), "a", "INC", ttl=60, wait=0)


@pytest.mark.parametrize(
    ("name", "incident_id", "now", "pid", "owner"),
    [
        ("db_outage-oltp", "INC-7", 1796181300.5, 4242, "INC-7-20261202T031500500000-4242"),
        ("db_outage-oltp", "", 1796181300.0, 1, "db_outage-oltp-20261202T031500000000-1"),
    ],
)
def test_a_run_that_names_no_owner_gets_a_run_unique_one(name, incident_id, now, pid, owner):
    assert runlock.run_owner(name, incident_id, now, pid) == owner
