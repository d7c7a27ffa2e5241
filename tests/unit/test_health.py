"""pg_health grading: pure functions from figures and thresholds to findings."""

import pytest
from ansible.module_utils.common.text.formatters import human_to_bytes
from ansible_collections.penguinmails.dbops.plugins.module_utils import health
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import should_fail
from ansible_collections.penguinmails.dbops.plugins.module_utils.health import (
    CRITICAL,
    DEFAULT_THRESHOLDS,
    OK,
    UNKNOWN,
    WARNING,
    backends_figures,
    blocking_chains,
    grade,
    level,
    merged_thresholds,
    sequence_targets,
    standby_figures,
    summarize,
    worst,
)

LIMITS = {"warning": 10.0, "critical": 20.0}


@pytest.mark.parametrize(
    ("value", "warning", "critical", "status"),
    [
        (0, 10, 20, OK),
        (9.99, 10, 20, OK),
        (10, 10, 20, WARNING),  # at the threshold reaches it, like check_postgres
        (19.9, 10, 20, WARNING),
        (20, 10, 20, CRITICAL),
        (1e12, 10, 20, CRITICAL),
        (50, None, 20, CRITICAL),
        (15, None, 20, OK),  # warning disabled
        (15, 10, None, WARNING),  # critical disabled
        (1e12, None, None, OK),  # both disabled
        (None, 10, 20, UNKNOWN),
    ],
)
def test_level(value, warning, critical, status):
    assert level(value, warning, critical) == status


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], OK),
        ([OK, OK], OK),
        ([OK, UNKNOWN], UNKNOWN),
        ([UNKNOWN, WARNING], WARNING),
        ([CRITICAL, WARNING, OK], CRITICAL),
    ],
)
def test_worst(statuses, expected):
    assert worst(statuses) == expected


@pytest.mark.parametrize(
    ("status", "fail_on", "fails"),
    [
        (CRITICAL, "never", False),
        (CRITICAL, "critical", True),
        (WARNING, "critical", False),
        (WARNING, "warning", True),
        (CRITICAL, "warning", True),
        (UNKNOWN, "warning", False),
        (OK, "warning", False),
    ],
)
def test_should_fail(status, fail_on, fails):
    assert should_fail(status, fail_on) is fails


def test_module_threshold_defaults_are_the_grading_defaults():
    spec = health.thresholds_argument_spec()["options"]
    assert set(spec) == set(DEFAULT_THRESHOLDS)
    for check, levels in DEFAULT_THRESHOLDS.items():
        for name, default in levels.items():
            option = spec[check]["options"][name]
            documented = option.get("default")
            if option["type"] == "bytes" and documented is not None:
                documented = human_to_bytes(documented)
            assert documented == default, (check, name)


def test_merged_thresholds_overrides_one_level_and_can_disable_one():
    merged = merged_thresholds({"query_time": {"warning": 30.0}, "txn_idle": {"critical": None}})
    assert merged["query_time"] == {"warning": 30.0, "critical": 60.0}
    assert merged["txn_idle"] == {"warning": 60.0, "critical": None}
    assert merged["backends"] == DEFAULT_THRESHOLDS["backends"]


# --------------------------------------------------------------------------- backends


@pytest.mark.parametrize(
    ("max_connections", "superuser_reserved", "reserved", "clients", "percent", "status"),
    [
        (100, 3, 0, 10, 10.3, OK),
        (100, 3, 0, 78, 80.4, WARNING),  # 78 of 97 usable: reserved slots do not count as capacity
        (100, 3, 0, 88, 90.7, CRITICAL),
        (100, 3, 7, 72, 80.0, WARNING),  # PostgreSQL 16 reserved_connections
        (100, 3, 0, 99, 102.1, CRITICAL),  # superusers in their reserved slots
    ],
)
def test_backends_counts_reserved_slots(max_connections, superuser_reserved, reserved, clients, percent, status):
    figures = {
        "backends": backends_figures(
            {
                "max_connections": max_connections,
                "superuser_reserved_connections": superuser_reserved,
                "reserved_connections": reserved,
                "client_backends": clients,
            }
        )
    }
    [found] = grade(figures, merged_thresholds(None), ["backends"])
    assert found["value"] == percent
    assert found["status"] == status
    assert found["unit"] == "%"


# --------------------------------------------------------------------------- sessions


def session(pid, seconds, state="idle in transaction", **extra):
    return dict(
        {"pid": pid, "user": "app", "database": "oltp", "state": state, "seconds": seconds, "query": "UPDATE t"},
        **extra,
    )


@pytest.mark.parametrize("check", ["txn_idle", "txn_time", "query_time"])
@pytest.mark.parametrize(
    ("durations", "statuses"),
    [
        ([], [OK]),
        ([3.0], [OK]),
        ([15.0, 3.0], [WARNING]),
        ([25.0, 15.0, 3.0], [CRITICAL, WARNING]),
    ],
)
def test_session_checks_one_finding_per_offender(check, durations, statuses):
    figures = {check: {"count": len(durations), "top": [session(100 + i, d) for i, d in enumerate(durations)]}}
    findings = grade(figures, {check: LIMITS}, [check])
    assert [found["status"] for found in findings] == statuses
    if statuses != [OK]:
        assert findings[0]["subject"] == "pid 100"
        assert findings[0]["value"] == durations[0]
        assert "pid 100 (app@oltp" in findings[0]["message"]


def test_session_check_mentions_offenders_beyond_the_top_list():
    figures = {"txn_idle": {"count": 12, "top": [session(1, 30.0), session(2, 5.0)]}}
    [found] = grade(figures, {"txn_idle": LIMITS}, ["txn_idle"])
    assert found["status"] == CRITICAL
    assert "10 shorter sessions" in found["message"]


# --------------------------------------------------------------------------- blocking chains


@pytest.mark.parametrize(
    ("waits", "chains"),
    [
        ([], []),
        # 20 holds the lock, 21 waits for it
        (
            [{"pid": 21, "blocked_by": [20], "seconds": 5.0}],
            [{"root": 20, "blocked": [21], "depth": 1, "longest_wait_seconds": 5.0}],
        ),
        # 20 blocks 21, 21 (waiting itself) blocks 22 and 23: one chain of depth 2
        (
            [
                {"pid": 21, "blocked_by": [20], "seconds": 9.0},
                {"pid": 22, "blocked_by": [21], "seconds": 4.0},
                {"pid": 23, "blocked_by": [21, 20], "seconds": 2.0},
            ],
            [{"root": 20, "blocked": [21, 22, 23], "depth": 2, "longest_wait_seconds": 9.0}],
        ),
        # two independent chains, the larger first
        (
            [
                {"pid": 31, "blocked_by": [30], "seconds": 1.0},
                {"pid": 41, "blocked_by": [40], "seconds": 3.0},
                {"pid": 42, "blocked_by": [40], "seconds": 2.0},
            ],
            [
                {"root": 40, "blocked": [41, 42], "depth": 1, "longest_wait_seconds": 3.0},
                {"root": 30, "blocked": [31], "depth": 1, "longest_wait_seconds": 1.0},
            ],
        ),
        # a deadlock not yet broken: reported under the lowest pid
        (
            [{"pid": 51, "blocked_by": [52], "seconds": 0.5}, {"pid": 52, "blocked_by": [51], "seconds": 0.4}],
            [{"root": 51, "blocked": [52], "depth": 1, "longest_wait_seconds": 0.4}],
        ),
    ],
)
def test_blocking_chains(waits, chains):
    assert blocking_chains(waits) == chains


def test_lockwait_grades_each_chain_by_its_longest_wait_and_names_the_root():
    waits = [{"pid": 21, "blocked_by": [20], "seconds": 15.0}, {"pid": 22, "blocked_by": [21], "seconds": 25.0}]
    figures = {
        "lockwait": {
            "waits": waits,
            "blockers": [
                {"pid": 20, "user": "etl", "database": "oltp", "state": "idle in transaction", "xact_seconds": 40.0},
                {"pid": 21, "user": "app", "database": "oltp", "state": "active"},
            ],
            "chains": blocking_chains(waits),
        }
    }
    [found] = grade(figures, {"lockwait": LIMITS}, ["lockwait"])
    assert found["status"] == CRITICAL
    assert found["subject"] == "pid 20"
    assert found["value"] == 25.0
    assert "pid 20 (etl@oltp)" in found["message"]
    assert "idle in transaction" in found["message"]
    assert "blocks 2 session(s)" in found["message"]
    assert "depth 2" in found["message"]


def test_lockwait_without_waits_is_ok():
    [found] = grade({"lockwait": {"waits": [], "blockers": [], "chains": []}}, {"lockwait": LIMITS}, ["lockwait"])
    assert found["status"] == OK


# --------------------------------------------------------------------------- hot standby delay

DELAY = {"warning": 1000, "critical": 2000, "warning_seconds": 10.0, "critical_seconds": 20.0}


@pytest.mark.parametrize(
    ("backlog", "since_replay", "receiver", "paused", "statuses"),
    [
        (0, 9999.0, "streaming", False, [OK]),  # idle primary: old replay timestamp is not lag
        (500, 5.0, "streaming", False, [OK]),
        (1500, 5.0, "streaming", False, [WARNING]),
        (1500, 25.0, "streaming", True, [WARNING, CRITICAL]),
        (100, 12.0, "streaming", True, [WARNING]),  # seconds alone
        (0, 1.0, None, False, [WARNING]),  # receiver not running
        (None, None, "streaming", False, [UNKNOWN]),
    ],
)
def test_hot_standby_delay_on_a_standby(backlog, since_replay, receiver, paused, statuses):
    standby = standby_figures(
        {
            "replay_backlog_bytes": backlog,
            "seconds_since_last_replay": since_replay,
            "receiver_status": receiver,
            "replay_paused": paused,
        }
    )
    findings = grade(
        {"hot_standby_delay": {"standby": standby, "replicas": []}}, {"hot_standby_delay": DELAY}, ["hot_standby_delay"]
    )
    assert sorted(found["status"] for found in findings) == sorted(statuses)
    if paused and statuses != [OK]:
        assert any("replay is paused" in found["message"] for found in findings)


@pytest.mark.parametrize(
    ("backlog", "after_recheck", "statuses"),
    [
        (120, 0, [OK]),  # a running-xacts record caught in flight: replayed by the re-read
        (120, 120, [CRITICAL]),  # still waiting a second later: replay is stuck
        (120, None, [CRITICAL]),  # not re-read
    ],
)
def test_wal_in_flight_is_not_a_replay_delay(backlog, after_recheck, statuses):
    raw = {
        "replay_backlog_bytes": backlog,
        "seconds_since_last_replay": 196.1,
        "receiver_status": "streaming",
        "replay_paused": False,
    }
    if after_recheck is not None:
        raw["backlog_after_recheck"] = after_recheck
    findings = grade(
        {"hot_standby_delay": {"standby": standby_figures(raw), "replicas": []}},
        {"hot_standby_delay": DELAY},
        ["hot_standby_delay"],
    )
    assert sorted(found["status"] for found in findings) == sorted(statuses)


@pytest.mark.parametrize(
    ("raw", "worth"),
    [
        (None, False),  # a primary
        ({"replay_backlog_bytes": 0, "receive_lsn": "0/3000000", "seconds_since_last_replay": 9.0}, False),
        ({"replay_backlog_bytes": 96, "receive_lsn": "0/3000060", "seconds_since_last_replay": 9.0}, True),
        (
            {
                "replay_backlog_bytes": 96,
                "receive_lsn": "0/3000060",
                "seconds_since_last_replay": 9.0,
                "replay_paused": True,
            },
            False,  # paused: it waits for sure
        ),
        ({"replay_backlog_bytes": 96, "receive_lsn": "0/3000060", "seconds_since_last_replay": None}, False),
        ({"replay_backlog_bytes": 96, "receive_lsn": None, "seconds_since_last_replay": 9.0}, False),
    ],
)
def test_backlog_worth_rechecking(raw, worth):
    assert health.backlog_worth_rechecking(raw) is worth


@pytest.mark.parametrize(
    ("answers", "returned", "reads"),
    [
        ([96, 0], 0, 2),  # replayed on the second read
        ([0], 0, 1),
        ([96] * 50, 96, 21),  # stuck: gives up at the deadline (1 s of 0.05 s steps)
    ],
)
def test_recheck_backlog_reads_until_replayed_or_the_deadline(monkeypatch, answers, returned, reads):
    asked = []

    def fake_fetch(conn, params, statement, args):
        asked.append(args)
        return [{"waiting": answers[len(asked) - 1]}]

    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    monkeypatch.setattr(health, "fetch_dicts", fake_fetch)
    assert health.recheck_backlog(None, None, "0/3000060", clock=lambda: now[0], sleep=sleep) == returned
    assert asked == [["0/3000060"]] * reads


@pytest.mark.parametrize(
    ("replicas", "statuses", "subjects"),
    [
        ([], [OK], [None]),
        ([{"application_name": "s1", "replay_lag_bytes": 10, "replay_lag_seconds": None}], [OK], ["replica s1"]),
        (
            [
                {"application_name": "s1", "replay_lag_bytes": 10, "replay_lag_seconds": 1.0},
                {"application_name": "s2", "replay_lag_bytes": 5000, "replay_lag_seconds": 12.0},
            ],
            [CRITICAL, WARNING],
            ["replica s2", "replica s2"],
        ),
        # caught up: the seconds are the delay its last record had, not a current one
        ([{"application_name": "s1", "replay_lag_bytes": 0, "replay_lag_seconds": 92.6}], [OK], ["replica s1"]),
        ([{"application_name": "s1", "replay_lag_bytes": 1, "replay_lag_seconds": 92.6}], [CRITICAL], ["replica s1"]),
    ],
)
def test_hot_standby_delay_on_a_primary_per_replica(replicas, statuses, subjects):
    findings = grade(
        {"hot_standby_delay": {"standby": None, "replicas": replicas}},
        {"hot_standby_delay": DELAY},
        ["hot_standby_delay"],
    )
    assert [found["status"] for found in findings] == statuses
    assert [found["subject"] for found in findings] == subjects


# --------------------------------------------------------------------------- replication slots


def slot(name, retained, active=False, wal_status="reserved"):
    return {
        "slot_name": name,
        "slot_type": "physical",
        "active": active,
        "retained_bytes": retained,
        "wal_status": wal_status,
    }


@pytest.mark.parametrize(
    ("slots", "statuses"),
    [
        ([], [OK]),
        ([slot("a", 10, active=True)], [OK]),
        ([slot("a", 1500)], [WARNING]),
        ([slot("a", 2500), slot("b", 1500, active=True), slot("c", 1)], [CRITICAL, WARNING]),
        ([slot("a", None, wal_status="lost")], [CRITICAL]),
        ([slot("a", 10, wal_status="unreserved")], [WARNING]),
        ([slot("a", None)], [OK]),  # never used: restart_lsn is null
    ],
)
def test_replication_slots(slots, statuses):
    findings = grade(
        {"replication_slots": slots}, {"replication_slots": {"warning": 1000, "critical": 2000}}, ["replication_slots"]
    )
    assert [found["status"] for found in findings] == statuses


def test_inactive_slot_message_says_inactive():
    [found] = grade(
        {"replication_slots": [slot("lab_orphan", 5000)]},
        {"replication_slots": {"warning": 1000}},
        ["replication_slots"],
    )
    assert found["subject"] == "slot lab_orphan"
    assert found["message"].startswith("inactive physical slot lab_orphan retains")


# --------------------------------------------------------------------------- wraparound, sequences, counters


@pytest.mark.parametrize(
    ("ages", "statuses"),
    [
        ([(200_000_000, 5)], [OK]),
        ([(1_350_000_000, 5)], [WARNING]),
        ([(1_450_000_000, 5), (1_300_000_000, 1_500_000_000)], [CRITICAL, WARNING, CRITICAL]),
    ],
)
def test_txn_wraparound_per_database_xid_and_multixact(ages, statuses):
    databases = [{"database": "db%d" % i, "xid_age": xid, "mxid_age": mxid} for i, (xid, mxid) in enumerate(ages)]
    findings = grade({"databases": databases}, merged_thresholds(None), ["txn_wraparound"])
    assert [found["status"] for found in findings] == statuses


def sequence(name, percent, remaining=100):
    return {
        "schema": "public",
        "sequence": name,
        "percent_used": percent,
        "remaining": remaining,
        "owner_table": "orders",
        "owner_column": "id",
        "column_type": "integer",
    }


@pytest.mark.parametrize(
    ("per_database", "statuses"),
    [
        ({}, [OK]),
        ({"oltp": {"sequences": 2, "top": [sequence("a", 50.0), sequence("b", 10.0)]}}, [OK]),
        ({"oltp": {"sequences": 1, "top": [sequence("a", 86.0)]}}, [WARNING]),
        (
            {"oltp": {"top": [sequence("a", 99.0)]}, "olap": {"top": [sequence("b", 90.0), sequence("c", 1.0)]}},
            [CRITICAL, WARNING],
        ),
        ({"oltp": {"top": []}, "gone": {"error": "no such database"}}, [UNKNOWN]),
    ],
)
def test_sequence(per_database, statuses):
    findings = grade({"sequences": per_database}, merged_thresholds(None), ["sequence"])
    assert [found["status"] for found in findings] == statuses


def test_sequence_message_names_database_column_and_values_left():
    figures = {"sequences": {"oltp": {"top": [sequence("orders_id_seq", 96.5, 75_000_000)]}}}
    [found] = grade(figures, merged_thresholds(None), ["sequence"])
    assert found["subject"] == "sequence oltp.public.orders_id_seq"
    assert "75,000,000 values left" in found["message"]
    assert "orders.id (integer)" in found["message"]


def counters(**per_database):
    return [
        {"database": name, "deadlocks": d, "conflicts": c, "checksum_failures": f, "stats_reset": None}
        for name, (d, c, f) in per_database.items()
    ]


@pytest.mark.parametrize(
    ("rows", "check", "statuses"),
    [
        (counters(a=(0, 0, 0)), "deadlocks", [OK]),
        (counters(a=(150, 0, 0), b=(3, 0, 0)), "deadlocks", [WARNING]),
        (counters(a=(0, 101, 0)), "conflicts", [WARNING]),
        (counters(a=(0, 0, 0)), "checksum_failures", [OK]),
        (counters(a=(0, 0, 1), b=(0, 0, 4)), "checksum_failures", [CRITICAL, CRITICAL]),
        (counters(a=(0, 0, None)), "checksum_failures", [OK]),  # checksums disabled
    ],
)
def test_pg_stat_database_counters(rows, check, statuses):
    findings = grade({"database_counters": rows}, merged_thresholds(None), [check])
    assert [found["status"] for found in findings] == statuses


def test_checksums_disabled_is_said():
    [found] = grade({"database_counters": counters(a=(0, 0, None))}, merged_thresholds(None), ["checksum_failures"])
    assert "disabled" in found["message"]


# --------------------------------------------------------------------------- selection and summary


@pytest.mark.parametrize(
    ("databases", "requested", "targets"),
    [
        (
            [
                {"database": "postgres", "allows_connections": True, "is_template": False},
                {"database": "template0", "allows_connections": False, "is_template": True},
                {"database": "template1", "allows_connections": True, "is_template": True},
                {"database": "app", "allows_connections": True, "is_template": False},
                {"database": "closed", "allows_connections": False, "is_template": False},
            ],
            None,
            {"app": None, "postgres": None},
        ),
        (
            [
                {"database": "app", "allows_connections": True, "is_template": False},
                {"database": "closed", "allows_connections": False, "is_template": False},
            ],
            ["app", "closed", "nope"],
            {
                "app": None,
                "closed": "database does not accept connections (datallowconn is false)",
                "nope": "no such database",
            },
        ),
    ],
)
def test_sequence_targets(databases, requested, targets):
    assert sequence_targets(databases, requested) == targets


def test_grade_runs_only_the_checks_asked_for_in_check_order():
    figures = {
        "connect_ms": 2.0,
        "txn_idle": {"count": 0, "top": []},
        "backends": backends_figures(
            {"max_connections": 10, "superuser_reserved_connections": 0, "client_backends": 9}
        ),
    }
    findings = grade(figures, merged_thresholds(None), ["txn_idle", "connection", "backends"])
    assert [found["check"] for found in findings] == ["connection", "backends", "txn_idle"]
    summary = summarize(findings)
    assert summary["status"] == CRITICAL
    assert summary["checks"] == {"connection": OK, "backends": CRITICAL, "txn_idle": OK}
    assert [found["check"] for found in summary["problems"]] == ["backends"]


def test_every_finding_has_the_documented_keys():
    figures = {"txn_idle": {"count": 1, "top": [session(7, 99.0)]}}
    [found] = grade(figures, merged_thresholds(None), ["txn_idle"])
    assert set(found) == {"check", "status", "value", "threshold", "unit", "subject", "message"}
    assert found["threshold"] == 60.0  # the level reached
