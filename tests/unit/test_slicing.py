"""AWX job slicing (plugins/module_utils/slicing.py): which hosts a slice covers, and what a
slice may conclude about a tier it sees only part of. Pure functions, table tests."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import slicing, triage

INVENTORY = {
    "all": {"children": ["oltp", "content", "pgbouncer"], "vars": {"dbops_incident_dir": "/srv/incidents"}},
    "oltp": {"hosts": ["oltp-3", "oltp-1", "oltp-2"], "vars": {"tier_database": "penguinmails_oltp"}},
    "content": {"hosts": ["content-1", "content-2"]},
    "pgbouncer": {"hosts": ["pgb-1"]},
    "ungrouped": ["loner"],
    "_meta": {"hostvars": {name: {"ansible_port": index} for index, name in enumerate(
        ["content-1", "content-2", "loner", "oltp-1", "oltp-2", "oltp-3", "pgb-1"])}},
}  # fmt: skip


@pytest.mark.parametrize(
    ("hosts", "number", "count", "expected"),
    [
        (["c", "a", "b"], 1, 1, ["a", "b", "c"]),
        (["c", "a", "b"], 1, 2, ["a", "c"]),
        (["c", "a", "b"], 2, 2, ["b"]),
        (["c", "a", "b"], 3, 3, ["c"]),
        (["a"], 2, 2, []),  # more slices than hosts: an empty slice (AWX fails that job)
        (["b", "a", "a"], 1, 2, ["a"]),
    ],
)
def test_slice_hosts_like_awx(hosts, number, count, expected):
    assert slicing.slice_hosts(hosts, number, count) == expected


@pytest.mark.parametrize(("number", "count"), [(0, 2), (3, 2), (1, 0), (True, 2), (1, "2")])
def test_a_slice_out_of_range_is_refused(number, count):
    with pytest.raises(slicing.SliceError):
        slicing.slice_hosts(["a"], number, count)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 8])
def test_every_host_is_in_exactly_one_slice(count):
    seen = []
    for number in range(1, count + 1):
        seen += slicing.inventory_hosts(slicing.slice_inventory(INVENTORY, number, count))
    assert sorted(seen) == slicing.inventory_hosts(INVENTORY)
    assert len(seen) == len(set(seen))


def test_slice_inventory_restricts_groups_and_keeps_group_vars():
    first = slicing.slice_inventory(INVENTORY, 1, 2)
    second = slicing.slice_inventory(INVENTORY, 2, 2)
    # sorted: content-1 content-2 loner oltp-1 oltp-2 oltp-3 pgb-1
    assert first["oltp"] == {"hosts": ["oltp-2"], "vars": {"tier_database": "penguinmails_oltp"}}
    assert second["oltp"]["hosts"] == ["oltp-3", "oltp-1"]  # the group's own order, restricted
    assert first["content"]["hosts"] == ["content-1"] and second["content"]["hosts"] == ["content-2"]
    assert first["pgbouncer"]["hosts"] == ["pgb-1"] and second["pgbouncer"]["hosts"] == []
    assert first["ungrouped"] == {"hosts": ["loner"]} and second["ungrouped"] == {"hosts": []}
    assert first["all"]["vars"] == INVENTORY["all"]["vars"]
    assert sorted(second["_meta"]["hostvars"]) == ["content-2", "oltp-1", "oltp-3"]
    assert INVENTORY["oltp"]["hosts"] == ["oltp-3", "oltp-1", "oltp-2"]  # the input is not changed


def standby(streaming):
    status = "streaming" if streaming else None
    return {
        "reachable": True,
        "role": "standby",
        "figures": {"hot_standby_delay": {"standby": {"receiver_status": status}}},
    }


PRIMARY = {"reachable": True, "role": "primary", "figures": {}}
DOWN = {"reachable": False, "conn_err_kind": "refused"}


@pytest.mark.parametrize(
    ("servers", "tier_members", "verdict"),
    [
        ({"a": PRIMARY, "c": standby(True)}, None, "primary"),
        ({"b": standby(True)}, None, "upstream_alive"),
        ({"b": standby(False), "c": standby(True)}, None, "upstream_alive"),
        ({"b": standby(False)}, None, "outage"),
        ({"a": DOWN, "c": standby(False)}, None, "outage"),
        ({}, None, "not_owner"),
        # No member in view answers: the owner (first member of the declared tier) reports it.
        ({"a": DOWN, "c": DOWN}, ["a", "b", "c"], "outage"),
        ({"b": DOWN}, ["a", "b", "c"], "not_owner"),
        ({"b": DOWN}, None, "outage"),
    ],
)
def test_what_a_slice_may_conclude_about_its_tier(servers, tier_members, verdict):
    members = sorted(servers)
    roles = triage.member_roles(members, servers)
    view = slicing.slice_outage_view(members, roles, servers, tier_members)
    assert view["verdict"] == verdict, view
    assert view["reason"]


def classify(servers, sliced, tier_members=None):
    members = sorted(servers)
    result = triage.triage(
        {
            "tiers": [{"name": "oltp", "members": members}],
            "health": {"servers": servers},
            "incident_id_base": "awx-900",
            "sliced": sliced,
            "tier_members": {"oltp": tier_members} if tier_members else {},
        }
    )
    return result["tiers"]["oltp"], result["incidents"]


def test_a_slice_of_standbys_that_stream_opens_no_outage_where_a_whole_tier_view_would():
    servers = {"oltp-2": standby(True)}
    state, incidents = classify(servers, sliced=True)
    assert incidents == [] and state["slice_view"]["verdict"] == "upstream_alive"
    unsliced = classify(servers, sliced=False)[1]
    assert [incident["type"] for incident in unsliced] == ["db_outage"]


def test_two_slices_of_a_dead_primary_open_the_same_incident_id():
    first = classify({"oltp-1": DOWN, "oltp-3": standby(False)}, sliced=True)[1]
    second = classify({"oltp-2": standby(False)}, sliced=True)[1]
    outage = [
        [incident["incident_id"] for incident in found if incident["type"] == "db_outage"] for found in (first, second)
    ]
    assert outage == [["awx-900-oltp-db_outage"], ["awx-900-oltp-db_outage"]]


def test_a_down_member_of_a_slice_that_is_not_the_owner_is_still_said():
    state, incidents = classify({"oltp-2": DOWN}, sliced=True, tier_members=["oltp-1", "oltp-2", "oltp-3"])
    assert incidents == []
    assert state["slice_view"]["verdict"] == "not_owner"
    assert any("oltp-2 does not answer" in note["message"] for note in state["notes"])


@pytest.mark.parametrize("listed", ["oltp-1", [""], [1], {"a": 1}])
def test_tier_members_that_are_not_a_list_of_names_are_refused(listed):
    with pytest.raises(triage.TriageError, match="tier_members: oltp must be a list of host names"):
        triage.triage(
            {
                "tiers": [{"name": "oltp", "members": ["oltp-2"]}],
                "health": {"servers": {"oltp-2": DOWN}},
                "sliced": True,
                "tier_members": {"oltp": listed},
            }
        )
