"""tier_members: a host's failover_candidate against the run's candidate choice of the same name."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.filter.tier_members import tier_members


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("false", False),  # a string from an inventory script or a survey
        ("no", False),
        ("true", True),
        ("", True),  # an AWX survey's blank candidate question: the run's choice, every host still eligible
        (None, True),  # a blank answer that arrives as null
        ("oltp-2", True),  # -e failover_candidate=oltp-2 shows in every host's vars
    ],
)
def test_failover_candidate(value, expected):
    hostvars = {"oltp-1": {"pg_port": 5432, "failover_candidate": value}}
    assert tier_members(["oltp-1"], hostvars)[0]["failover_candidate"] is expected


def test_absent_means_eligible():
    assert tier_members(["db"], {"db": {"pg_port": "5432"}}) == [
        {"name": "db", "login_host": "db", "login_port": 5432, "failover_candidate": True}
    ]
