"""The data integrity runbook across the tier's copies (integrity_check_standbys), without a server."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.filter.integrity import integrity_plan, integrity_verdict
from ansible_collections.penguinmails.dbops.plugins.module_utils.integrity import (
    FIND_THE_PAGE,
    RECLONE_STANDBY,
    REINDEX_PRIMARY,
    RESTORE_FROM_BACKUP,
    SWITCH_OVER,
    copy_damage,
    recovery_across_copies,
    recovery_plan,
    run_outcome,
    verification,
)

INDEX = {"check": "bt_index_check", "relation": "public.a_pkey", "table": "public.a", "problem": "invalid page"}
HEAP = {"check": "verify_heapam", "relation": "public.b", "table": "public.b", "blocks": [2], "problem": "bad page"}
CHECKSUM = {"check": "checksum_failures", "relation": "", "table": "", "problem": "1 data checksum failure(s)"}
ROWS = {
    "check": "invariant",
    "relation": "public.c",
    "table": "public.c",
    "problem": "1 rows breaking invariant x",
    "key": ["id"],
    "keys": [[7]],
}


def scan(*findings, standby=True):
    return {"findings": list(findings), "not_reached": [], "standby": standby}


@pytest.mark.parametrize(
    "findings, expected",
    [
        ([], []),
        ([INDEX, CHECKSUM], [("index", "public.a_pkey")]),  # the index's page explains the checksum failure
        ([CHECKSUM], [("checksums", "")]),
        ([HEAP, CHECKSUM, ROWS], [("heap", "public.b")]),  # bad rows are data, the same on every copy
    ],
)
def test_copy_damage(findings, expected):
    assert sorted(copy_damage(findings)) == expected


@pytest.mark.parametrize(
    "primary, standbys, paths, reindex, restore, person_words",
    [
        # An index damaged on any copy is rebuilt on the primary; the standbys replay the new one.
        (scan(), {"s2": scan(INDEX)}, [("public.a_pkey", REINDEX_PRIMARY, ["s2"])], ["public.a_pkey"], [], []),
        (
            scan(INDEX),
            {"s2": scan(), "s3": scan(INDEX)},
            [("public.a_pkey", REINDEX_PRIMARY, ["p", "s3"])],
            ["public.a_pkey"],
            [],
            [],
        ),
        # A heap page damaged only on a standby: re-clone it; nothing on the primary, nothing restored.
        (scan(), {"s2": scan(HEAP, CHECKSUM)}, [("public.b", RECLONE_STANDBY, ["s2"])], [], [], ["re-clone s2 from p"]),
        # Damaged only on the primary while a standby's copy is clean: switch over, no restore from a backup.
        (
            scan(HEAP),
            {"s2": scan(), "s3": scan(HEAP)},
            [("public.b", SWITCH_OVER, ["p", "s3"])],
            [],
            [],
            ["switch over to s2"],
        ),
        # Damaged on every copy checked: only a backup is left.
        (scan(HEAP), {"s2": scan(HEAP)}, [("public.b", RESTORE_FROM_BACKUP, ["p", "s2"])], [], ["public.b"], []),
        # A copy that could not be checked is never taken for clean.
        (
            scan(HEAP),
            {"s2": {"failed": True, "msg": "connection refused"}},
            [("public.b", RESTORE_FROM_BACKUP, ["p"])],
            [],
            ["public.b"],
            ["s2 could not be checked: connection refused"],
        ),
        (
            scan(HEAP),
            {"s2": scan(standby=False)},
            [("public.b", RESTORE_FROM_BACKUP, ["p"])],
            [],
            ["public.b"],
            ["not a standby"],
        ),
        # Bad rows are on every copy: quarantined and restored whatever the standbys say.
        (scan(ROWS, HEAP), {"s2": scan(ROWS)}, [("public.b", SWITCH_OVER, ["p"])], [], ["public.c"], []),
        # A checksum failure no check in scope explains names no page: find it first, whichever copy counts it.
        (scan(), {"s2": scan(CHECKSUM)}, [("", FIND_THE_PAGE, ["s2"])], [], [], ["s2: 1 data checksum failure(s)"]),
        (scan(CHECKSUM), {"s2": scan()}, [("", FIND_THE_PAGE, ["p"])], [], [], ["check the whole database"]),
    ],
)
def test_recovery_across_copies(primary, standbys, paths, reindex, restore, person_words):
    plan = recovery_across_copies("p", primary, standbys)
    damage = plan["copies"]["damage"]
    assert [(d["relation"], d["path"], d["damaged_on"]) for d in damage] == paths
    assert plan["reindex"] == reindex and plan["restore"] == restore
    assert plan["clean"] is False
    for words in person_words:
        assert any(words in line for line in plan["for_a_person"]), plan["for_a_person"]
    assert [entry["table"] for entry in plan["quarantine"]] == (["public.c"] if ROWS in primary["findings"] else [])


def test_recovery_across_clean_copies_is_clean_and_matches_the_primarys_plan():
    plan = recovery_across_copies("p", scan(), {"s2": scan(), "s3": scan()})
    assert plan["clean"] is True and plan["copies"]["checked"] == ["p", "s2", "s3"]
    assert {key: plan[key] for key in recovery_plan([])} == recovery_plan([])


def test_switch_over_names_the_clean_copy_and_the_blocks():
    plan = recovery_across_copies("p", scan(HEAP), {"s2": scan()})
    (action,) = plan["for_a_person"]
    assert action.startswith("p's copy of public.b is damaged (blocks [2]) and s2's is clean: switch over to s2")
    assert "re-clone p" in action


def test_integrity_plan_filter_uses_the_primarys_plan_without_standbys():
    before = {"findings": [HEAP], "plan": recovery_plan([HEAP])}
    assert integrity_plan(before, "p", {"results": [], "skipped": True}) == before["plan"]
    skipped = {"results": [{"item": "s2", "skipped": True}]}
    assert integrity_plan(before, "p", skipped) == before["plan"]
    checked = {"results": [{"item": "s2", "failed": False, **scan()}]}
    assert integrity_plan(before, "p", checked)["copies"]["damage"][0]["path"] == SWITCH_OVER


@pytest.mark.parametrize(
    "standbys_after, verified, remaining_words",
    [
        ({"s2": scan()}, True, None),
        ({"s2": scan(ROWS)}, True, None),  # rows are the primary's to judge
        ({"s2": scan(HEAP)}, False, "on s2: verify_heapam public.b: bad page"),
        ({"s2": {"failed": True, "msg": "has not replayed"}}, False, "s2 could not be checked again: has not replayed"),
        ({"s2": dict(scan(), not_reached=["verify_heapam public.b"])}, False, "on s2: not reached"),
    ],
)
def test_verification_across_copies(standbys_after, verified, remaining_words):
    verdict = verification({"findings": []}, scan(), {"s2": scan(INDEX)}, standbys_after, ["re-clone s2"])
    assert verdict["verified"] is verified
    assert "(and 1 on standbys)" in verdict["reason"]
    if remaining_words:
        assert any(remaining_words in line for line in verdict["remaining"]), verdict
        assert verdict["advice"] == ["re-clone s2"]
    else:
        assert "advice" not in verdict


def test_escalation_note_says_what_to_do():
    plan = recovery_across_copies("p", scan(), {"s2": scan(HEAP)})
    standbys = {"results": [{"item": "s2", **scan(HEAP)}]}
    verdict = integrity_verdict(scan(), scan(), standbys, standbys, plan)
    note = run_outcome(False, verdict, [])["note"]
    assert note.startswith("for a person: on s2: verify_heapam public.b: bad page")
    assert "what to do: re-clone s2 from p" in note


class Replay:
    """pg_last_wal_replay_lsn() answers, one per poll: (in recovery, replayed up to the LSN, position)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = []

    def __call__(self, conn, params, statement, args=None):
        self.asked.append(args)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return type("Cursor", (), {"fetchone": lambda self: answer})()


@pytest.mark.parametrize(
    "answers, polls",
    [
        ([(False, None, None)], 1),  # a primary does not wait
        ([(True, True, "0/3000200")], 1),
        ([(True, False, "0/3000000"), (True, False, "0/3000100"), (True, True, "0/3000200")], 3),
    ],
)
def test_wait_for_replay_returns_once_replayed(monkeypatch, answers, polls):
    from ansible_collections.penguinmails.dbops.plugins.module_utils import integrity_run

    replay = Replay(*answers)
    monkeypatch.setattr(integrity_run, "execute", replay)
    monkeypatch.setattr(integrity_run.time, "sleep", lambda seconds: None)
    integrity_run.wait_for_replay(None, None, "0/3000200", 5, clock=iter(range(100)).__next__)
    assert replay.asked == [["0/3000200"]] * polls


def test_wait_for_replay_fails_with_the_position_reached(monkeypatch):
    from ansible_collections.penguinmails.dbops.plugins.module_utils import integrity_run

    monkeypatch.setattr(integrity_run, "execute", Replay((True, False, "0/3000100")))
    monkeypatch.setattr(integrity_run.time, "sleep", lambda seconds: None)
    with pytest.raises(ValueError, match=r"not replayed .* up to 0/3000200 within 3s \(it is at 0/3000100\)"):
        integrity_run.wait_for_replay(None, None, "0/3000200", 3, clock=iter(range(100)).__next__)
