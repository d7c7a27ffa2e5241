"""After a promotion: waiting for the re-pointed standbys, and what commits on the new primary wait for."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.filter.outage import synchronous_for_followers_filter
from ansible_collections.penguinmails.dbops.plugins.module_utils import repoint
from ansible_collections.penguinmails.dbops.plugins.module_utils.failover import (
    Member,
    decide,
    synchronous_for_followers,
    verification,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import ConnectionFailure, ConnectionParams


@pytest.mark.parametrize(
    ("names", "following", "not_following", "strict", "change", "wanted", "reduced", "dropped"),
    [
        # every standby follows, or the one that does not is not waited for: nothing to change
        ("ANY 1 (db_3)", ["db-3"], [], False, False, "ANY 1 (db_3)", False, []),
        ("ANY 1 (db_3)", ["db-3"], ["db-4"], False, False, "ANY 1 (db_3)", False, []),
        # the only synchronous standby does not follow: commits go asynchronous, recorded
        ("ANY 1 (db_3)", [], ["db-3"], False, True, "", True, ["db-3"]),
        # ... unless strict: they keep waiting, as asked
        ("ANY 1 (db_3)", [], ["db-3"], True, False, "ANY 1 (db_3)", False, ["db-3"]),
        # another one follows: it alone is waited for
        ("ANY 1 (db_3, db_4)", ["db-4"], ["db-3"], False, True, "ANY 1 (db_4)", False, ["db-3"]),
        ("FIRST 2 (db_3, db_4)", ["db-4"], ["db-3"], False, True, "FIRST 1 (db_4)", True, ["db-3"]),
        # '*' waits for any standby: one that does not follow counts too
        ("ANY 1 (*)", ["db-4"], ["db-3"], False, True, "ANY 1 (db_4)", False, ["db-3"]),
        # asynchronous (or not set by the plan): nothing waits
        ("", [], ["db-3"], False, False, "", False, []),
        (None, [], ["db-3"], False, False, None, False, []),
    ],
)
def test_synchronous_for_followers(names, following, not_following, strict, change, wanted, reduced, dropped):
    verdict = synchronous_for_followers(names, following, not_following, strict)
    assert (verdict["change"], verdict["synchronous_standby_names"]) == (change, wanted)
    assert (verdict["durability_reduced"], verdict["dropped"]) == (reduced, dropped)


def test_the_filter_reads_the_registered_wait_and_a_skipped_one():
    waited = {
        "standbys": {"db-3": {"streaming": False}, "db-4": {"streaming": True}},
        "not_streaming": {"db-3": "db-3 does not stream ..."},
    }
    decision = {"synchronous_standby_names": "ANY 1 (db_3, db_4)"}
    verdict = synchronous_for_followers_filter(decision, waited, ["db-3", "db-4"], False)
    assert verdict["synchronous_standby_names"] == "ANY 1 (db_4)" and verdict["dropped"] == ["db-3"]
    skipped = synchronous_for_followers_filter(decision, {"skipped": True}, ["db-3", "db-4"], False)
    assert skipped["change"] is False


def tier_after():
    members = [
        Member("db-1", {"reachable": False, "in_recovery": None}),
        Member("db-2", {"reachable": True, "in_recovery": False, "timeline_id": 2}),
        Member("db-3", {"reachable": True, "in_recovery": True, "wal_receiver": {"status": "waiting"}}),
    ]
    addresses = {"db-%d" % number: ("198.18.0.%d" % number, 5432) for number in range(1, 4)}
    return members, addresses


def test_the_verification_tells_why_a_standby_does_not_follow():
    members, addresses = tier_after()
    why = {"db-3": "db-3 does not stream from 198.18.0.2:5432 10s after it was re-pointed: rejoin it"}
    verdict = verification(decide(members), members, addresses, "db-2", ["db-3"], 1, why)
    assert verdict["verified"] is False
    assert verdict["reason"].endswith("db-3; " + why["db-3"])
    assert why["db-3"] not in verification(decide(members), members, addresses, "db-2", ["db-3"], 1)["reason"]


def test_the_reason_names_the_receiver_state_the_position_and_the_way_back():
    receiver = {"status": "waiting", "sender_host": "198.18.0.2", "sender_port": 5432, "received_tli": 1}
    reason = repoint.not_following_reason("db-3", receiver, "0/4000150", "198.18.0.2:5432", 10)
    assert reason.startswith("db-3 does not stream from 198.18.0.2:5432 10s after it was re-pointed")
    assert "waiting (from 198.18.0.2:5432, timeline 1)" in reason and "0/4000150" in reason
    assert "rejoin_old_primary.yml" in reason
    assert "no WAL receiver running" in repoint.not_following_reason("db-3", None, None, "198.18.0.2:5432", 10)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def follower_seeing(answers):
    """A Follower whose standbys answer, poll after poll, from `answers`: name -> list of receivers
    (a ConnectionFailure is raised; the last answer repeats)."""
    follower = repoint.Follower(
        ConnectionParams(host="198.18.0.2", port=5432, user="u", password="p", dbname="postgres"),
        {"primary_host": "198.18.0.2", "primary_port": 5432},
        check_mode=False,
    )
    polls = {name: list(seen) for name, seen in answers.items()}

    def receiver_of(standby):
        seen = polls[standby["name"]]
        answer = seen.pop(0) if len(seen) > 1 else seen[0]
        if isinstance(answer, Exception):
            raise answer
        return answer, "0/5000000"

    follower.receiver_of = receiver_of
    follower.primary_timeline = lambda: 2
    return follower


STREAMING = {"status": "streaming", "sender_host": "198.18.0.2", "sender_port": 5432, "received_tli": 2}
# Past the fork: it streams the old timeline's WAL from the new primary until its replay refuses the switch.
OLD_TIMELINE = dict(STREAMING, received_tli=1)
WAITING = {"status": "waiting", "sender_host": "198.18.0.2", "sender_port": 5432, "received_tli": 1}
FROM_THE_OLD = {"status": "streaming", "sender_host": "198.18.0.1", "sender_port": 5432}


def test_the_wait_ends_when_every_standby_streams_from_the_primary():
    clock = Clock()
    follower = follower_seeing({"db-3": [None, WAITING, STREAMING], "db-4": [STREAMING]})
    standbys = [{"name": "db-3"}, {"name": "db-4"}]
    assert follower.wait_streaming(standbys, 10, clock, clock.sleep) == {}
    assert clock.now == pytest.approx(2 * repoint.FOLLOW_POLL_S)
    assert follower.standbys == {"db-3": {"streaming": True}, "db-4": {"streaming": True}}


def test_a_standby_that_never_streams_from_the_primary_is_reported_after_the_wait():
    clock = Clock()
    failure = ConnectionFailure("timeout", "no answer")
    follower = follower_seeing({"db-3": [FROM_THE_OLD], "db-4": [STREAMING], "db-5": [failure], "db-6": [OLD_TIMELINE]})
    standbys = [{"name": "db-3"}, {"name": "db-4"}, {"name": "db-5"}, {"name": "db-6"}]
    not_streaming = follower.wait_streaming(standbys, 2, clock, clock.sleep)
    assert sorted(not_streaming) == ["db-3", "db-5", "db-6"]
    assert "streaming (from 198.18.0.2:5432, timeline 1)" in not_streaming["db-6"]
    assert "streaming (from 198.18.0.1:5432" in not_streaming["db-3"]
    assert not_streaming["db-5"].startswith("db-5 could not be asked whether it follows 198.18.0.2:5432")
    assert 2 <= clock.now < 2 + repoint.FOLLOW_POLL_S * 2
    assert {name: state["streaming"] for name, state in follower.standbys.items()} == {
        "db-3": False,
        "db-4": True,
        "db-5": False,
        "db-6": False,
    }
