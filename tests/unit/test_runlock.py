"""Of two runs that race for a tier's lock, exactly one holds it."""

import json
import threading

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
