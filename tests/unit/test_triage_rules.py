"""Triage rules (plugins/module_utils/triage.py): the whole rule table, tier rules, severity, summary."""

from __future__ import annotations

import copy
import pathlib

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import escalation
from ansible_collections.penguinmails.dbops.plugins.module_utils.triage import (
    DATA,
    MANUAL_STEPS,
    OUTAGE,
    PERF,
    PLAYBOOKS,
    POOL,
    RULES,
    SECURITY,
    TriageError,
    finding_type,
    runbook_for,
    severity_of,
    suspect_roles,
    triage,
)

CRITICAL, WARNING, OK, UNKNOWN = "CRITICAL", "WARNING", "OK", "UNKNOWN"
BELOW = {CRITICAL: WARNING, WARNING: OK}


# --------------------------------------------------------------------------- builders


def problem(check, status=WARNING, message=None, **extra):
    return dict({"check": check, "status": status, "message": message or "%s is %s" % (check, status)}, **extra)


def server(role="primary", problems=(), logins=None):
    if role == "down":
        return {"reachable": False, "role": "down", "conn_err_kind": "refused", "conn_err_msg": "connection refused"}
    return {"reachable": True, "role": role, "problems": list(problems), "figures": {"logins": list(logins or [])}}


def login(user, addr="127.0.0.1", superuser=False, sessions=1, backend_type="client backend"):
    return {
        "user": user,
        "superuser": superuser,
        "client_addr": addr,
        "backend_type": backend_type,
        "sessions": sessions,
        "pids": [4242],
    }


TIERS = [
    {"name": "oltp", "members": ["oltp-1", "oltp-2"], "database": "penguinmails_oltp"},
    {"name": "content", "members": ["content-1"], "database": "penguinmails_content"},
]


def healthy_servers():
    return {"oltp-1": server("primary"), "oltp-2": server("standby"), "content-1": server("primary")}


def run(servers=None, tiers=None, **params):
    return triage(dict({"tiers": tiers or TIERS, "health": {"servers": servers or healthy_servers()}}, **params))


def pool_result(findings=(), databases=("penguinmails_oltp", "penguinmails_content"), reachable=True):
    return {
        "reachable": reachable,
        "findings": list(findings),
        "databases": [{"name": name} for name in databases] if reachable else [],
    }


def pool_finding(check, status, database="penguinmails_oltp"):
    return {"check": check, "status": status, "message": "%s %s" % (check, status), "database": database}


# --------------------------------------------------------------------------- the rule table


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: "%s.%s" % (rule.source, rule.check))
def test_every_rule_fires_at_its_minimum_and_not_below(rule):
    assert finding_type(rule.source, problem(rule.check, rule.minimum)) == rule.incident_type
    assert finding_type(rule.source, problem(rule.check, CRITICAL)) == rule.incident_type
    assert finding_type(rule.source, problem(rule.check, BELOW[rule.minimum])) is None
    assert finding_type(rule.source, problem(rule.check, UNKNOWN)) is None


def test_rule_table_names_real_checks_and_types():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.health import CHECKS

    for rule in RULES:
        assert rule.incident_type in escalation.INCIDENT_TYPES
        assert rule.scope in ("member", "primary")
        if rule.source == "postgres":
            assert rule.check in CHECKS
    assert {rule.incident_type for rule in RULES} == {POOL, PERF, DATA}  # outage and security are tier rules
    # every type has a next step: its playbook, or (runbook planned) the seed's steps by hand
    assert set(PLAYBOOKS) | set(MANUAL_STEPS) == set(escalation.INCIDENT_TYPES)


def test_unknown_checks_are_notes():
    assert finding_type("postgres", problem("logins", CRITICAL)) is None
    assert finding_type("postgres", problem("no_such_check", CRITICAL)) is None


@pytest.mark.parametrize(
    ("check", "status", "expected"),
    [
        ("query_time", WARNING, PERF),
        ("lockwait", CRITICAL, PERF),
        ("txn_idle", WARNING, PERF),
        ("hot_standby_delay", WARNING, PERF),
        ("replication_slots", WARNING, PERF),
        ("checksum_failures", CRITICAL, DATA),
        ("backends", CRITICAL, POOL),
        ("backends", WARNING, None),
    ],
)
def test_a_primary_finding_opens_its_type_on_its_tier_only(check, status, expected):
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem(check, status)])
    result = run(servers)
    assert result["tiers"]["oltp"]["types"] == ([expected] if expected else [])
    assert result["tiers"]["content"]["types"] == []
    if expected is None:
        assert result["tiers"]["oltp"]["status"] == "notes"
        assert result["tiers"]["oltp"]["notes"][0]["check"] == check


# --------------------------------------------------------------------------- tier rules: outage


def test_healthy_fleet_has_no_incident():
    result = run()
    assert result["incidents"] == [] and result["types_found"] == [] and result["most_urgent"] is None
    assert result["tiers"]["oltp"]["primary"] == "oltp-1"
    assert result["tiers"]["oltp"]["status"] == "ok"
    assert result["tiers"]["oltp"]["summary"] == ["oltp: OK (primary oltp-1, 1 standby(s) answering); no incident."]
    assert result["summary"] == ["triage: no incident."]
    assert result["changed"] is False


@pytest.mark.parametrize(
    ("roles", "text"),
    [
        (
            {"oltp-1": "down", "oltp-2": "standby"},
            "no reachable primary: oltp-1 does not answer (refused); oltp-2 is a standby",
        ),
        ({"oltp-1": "down", "oltp-2": "down"}, "no member answers at all"),
        ({"oltp-1": "standby", "oltp-2": "standby"}, "no reachable primary: oltp-1 is a standby; oltp-2 is a standby"),
        ({"oltp-1": "primary", "oltp-2": "primary"}, "split brain: 2 servers say they are primary (oltp-1, oltp-2)"),
    ],
)
def test_a_tier_needs_exactly_one_reachable_primary(roles, text):
    servers = healthy_servers()
    servers.update({name: server(role) for name, role in roles.items()})
    result = run(servers)
    [incident] = result["tiers"]["oltp"]["incidents"]
    assert incident["type"] == OUTAGE
    assert text in incident["headline"]
    assert (incident["severity"], incident["response_target_minutes"]) == ("critical", 5)
    assert incident["playbook"] == "playbooks/incident_db_outage.yml"
    assert result["tiers"]["oltp"]["primary"] is None
    assert result["tiers"]["content"]["incidents"] == []


def test_a_member_missing_from_the_sweep_counts_as_down():
    servers = healthy_servers()
    del servers["oltp-1"]
    [incident] = run(servers)["tiers"]["oltp"]["incidents"]
    assert "oltp-1 was not checked" in incident["headline"]


def test_a_tier_without_members_is_an_outage():
    result = run(tiers=[{"name": "queue", "members": [], "database": "penguinmails_queue"}])
    assert result["tiers"]["queue"]["types"] == [OUTAGE]


def test_a_standby_down_behind_a_live_primary_is_a_note_not_an_incident():
    servers = healthy_servers()
    servers["oltp-2"] = server("down")
    tier = run(servers)["tiers"]["oltp"]
    assert tier["incidents"] == []
    assert tier["status"] == "notes"
    assert "oltp-2 does not answer (refused): the tier runs without it" in tier["notes"][0]["message"]
    assert "oltp-2 down" in tier["summary"][0]


def test_outage_symptoms_fold_into_the_outage():
    servers = healthy_servers()
    servers["oltp-1"] = server("down")
    servers["oltp-2"] = server("standby", [problem("hot_standby_delay", WARNING, "WAL receiver is not streaming")])
    pools = {"pgbouncer-1": pool_result([pool_finding("waiting_clients", CRITICAL)])}
    [incident] = run(servers, pgbouncers=pools)["tiers"]["oltp"]["incidents"]
    assert incident["type"] == OUTAGE
    symptoms = [item for item in incident["evidence"] if item.get("symptom")]
    assert {item["check"] for item in symptoms} == {"hot_standby_delay", "waiting_clients"}


def test_security_and_data_integrity_stay_separate_from_an_outage():
    servers = healthy_servers()
    servers["oltp-1"] = server("down")
    servers["oltp-2"] = server(
        "standby", [problem("checksum_failures", CRITICAL)], logins=[login("mallory", superuser=True)]
    )
    assert run(servers)["tiers"]["oltp"]["types"] == [OUTAGE, SECURITY, DATA]


# --------------------------------------------------------------------------- catalog scope


def test_catalog_findings_come_from_the_primary_once():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("invalid_indexes", WARNING, "1 invalid index")])
    servers["oltp-2"] = server("standby", [problem("invalid_indexes", WARNING, "1 invalid index")])
    [incident] = run(servers)["tiers"]["oltp"]["incidents"]
    assert incident["type"] == DATA
    assert [item["host"] for item in incident["evidence"]] == ["oltp-1"]


def test_without_a_primary_catalog_findings_come_from_the_first_member_that_answers():
    servers = healthy_servers()
    servers["oltp-1"] = server("down")
    servers["oltp-2"] = server("standby", [problem("sequence", CRITICAL, "sequence 97% used")])
    types = run(servers)["tiers"]["oltp"]["types"]
    assert types == [OUTAGE, DATA]


def test_member_findings_come_from_every_member():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("checksum_failures", CRITICAL)])
    servers["oltp-2"] = server("standby", [problem("checksum_failures", CRITICAL)])
    [incident] = run(servers)["tiers"]["oltp"]["incidents"]
    assert sorted(item["host"] for item in incident["evidence"]) == ["oltp-1", "oltp-2"]


# --------------------------------------------------------------------------- security


@pytest.mark.parametrize(
    ("logins", "cidrs", "expected", "reason"),
    [
        ([login("dbops_admin", superuser=True)], [], [], None),
        ([login("postgres", superuser=True)], [], [], None),
        ([login("mallory", superuser=True)], [], [SECURITY], "mallory is a superuser not in the expected list"),
        ([login("app", "10.1.2.3")], [], [], None),
        ([login("app", "10.1.2.3")], ["10.0.0.0/8"], [], None),
        ([login("app", "192.0.2.7")], ["10.0.0.0/8"], [SECURITY], "192.0.2.7 is outside the allowed client networks"),
        ([login("app", "127.0.0.1")], ["10.0.0.0/8"], [SECURITY], "127.0.0.1 is outside"),
        ([login("app", None)], ["10.0.0.0/8"], [], None),
        ([login("app", "::ffff:10.0.0.9")], ["10.0.0.0/8"], [], None),
        ([login("app", "2001:db8::1")], ["2001:db8::/32"], [], None),
        ([login("app", "2001:db8::1")], ["10.0.0.0/8"], [SECURITY], "2001:db8::1 is outside"),
        (
            [login("replicator", "192.0.2.9", backend_type="walsender")],
            ["10.0.0.0/8"],
            [SECURITY],
            "replication session(s) of replicator",
        ),
        ([login("mallory", None, superuser=True)], ["10.0.0.0/8"], [SECURITY], "from local socket"),
    ],
)
def test_security_rules(logins, cidrs, expected, reason):
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", logins=logins)
    tier = run(
        servers,
        allowed_client_cidrs=cidrs,
        expected_superusers=["postgres", "dbops_admin"],
    )["tiers"]["oltp"]
    assert tier["types"] == expected
    if reason:
        [incident] = tier["incidents"]
        assert reason in incident["headline"]
        assert (incident["severity"], incident["response_target_minutes"]) == ("critical", 5)
        # the security breach playbook, fed the role the evidence names
        assert (incident["playbook"], incident["runbook_status"]) == (
            "playbooks/incident_security_breach.yml",
            "available",
        )
        user = logins[0]["user"]
        assert incident["extra_vars"]["security_suspect_roles"] == [user]


def test_expected_superusers_default_is_postgres_only():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", logins=[login("dbops_admin", superuser=True)])
    assert run(servers)["tiers"]["oltp"]["types"] == [SECURITY]


def test_a_bad_allow_list_is_a_clear_error():
    with pytest.raises(TriageError, match=r"allowed_client_cidrs: '10\.0\.0\.0/33' is not an address or CIDR range"):
        run(allowed_client_cidrs=["10.0.0.0/33"])


def test_logins_not_checked_is_a_note():
    servers = healthy_servers()
    servers["oltp-1"] = {"reachable": True, "role": "primary", "problems": [], "figures": {}}
    tier = run(servers)["tiers"]["oltp"]
    assert tier["types"] == []
    assert "logins not checked" in tier["notes"][0]["message"]


# --------------------------------------------------------------------------- PgBouncer


@pytest.mark.parametrize(
    ("check", "status", "database", "oltp", "content"),
    [
        ("waiting_clients", WARNING, "penguinmails_oltp", [POOL], []),
        ("maxwait", CRITICAL, "penguinmails_content", [], [POOL]),
        ("utilization", CRITICAL, "penguinmails_oltp", [POOL], []),
        ("utilization", WARNING, "penguinmails_oltp", [], []),
        ("database_state", WARNING, "penguinmails_content", [], [POOL]),
        ("client_connections", WARNING, None, [POOL], [POOL]),
        ("waiting_clients", WARNING, "some_other_db", [], []),
    ],
)
def test_pool_findings_go_to_the_tier_of_their_database(check, status, database, oltp, content):
    result = run(pgbouncers={"pgbouncer-1": pool_result([pool_finding(check, status, database)])})
    assert result["tiers"]["oltp"]["types"] == oltp
    assert result["tiers"]["content"]["types"] == content


def test_pgbouncer_wide_findings_go_only_to_the_tiers_it_serves():
    pools = {"pgbouncer-1": pool_result([pool_finding("client_connections", CRITICAL, None)], ["penguinmails_oltp"])}
    result = run(pgbouncers=pools)
    assert (result["tiers"]["oltp"]["types"], result["tiers"]["content"]["types"]) == ([POOL], [])


def test_an_unreachable_pgbouncer_is_pool_exhaustion_for_every_tier():
    down = pool_result([pool_finding("connection", CRITICAL, None)], reachable=False)
    result = run(pgbouncers={"pgbouncer-1": down})
    assert [incident["tier"] for incident in result["incidents"]] == ["oltp", "content"]
    assert {incident["type"] for incident in result["incidents"]} == {POOL}
    assert result["incidents"][0]["evidence"][0]["message"].startswith("pgbouncer-1: ")


# --------------------------------------------------------------------------- PostHog and the admin panel


def posthog(findings, firing, reachable=True, error=None):
    return {"reachable": reachable, "error": error, "findings": findings, "firing": firing}


def posthog_finding(condition, alert_ids):
    return {
        "check": "posthog_%s" % condition,
        "status": CRITICAL,
        "message": "alert(s) firing for %s" % condition,
        "firing_alerts": alert_ids,
    }


def test_posthog_corroborates_a_type_the_servers_found():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("query_time", WARNING)])
    alerts = posthog([posthog_finding("query_time", ["a1"])], [{"id": "a1", "name": "OLTP query_time p95"}])
    [incident] = run(servers, posthog=alerts)["tiers"]["oltp"]["incidents"]
    assert incident["type"] == PERF
    assert [item["source"] for item in incident["evidence"]] == ["postgres", "posthog"]
    assert incident["severity"] == "low"  # a CRITICAL alert does not raise it: the servers say WARNING


def test_posthog_alone_opens_nothing():
    alerts = posthog(
        [posthog_finding("connection_pool", ["a1"])], [{"id": "a1", "name": "pool usage", "insight_name": "oltp"}]
    )
    result = run(posthog=alerts)
    assert result["incidents"] == []
    assert "the servers show no such problem now" in result["tiers"]["oltp"]["notes"][0]["message"]


def test_posthog_alert_naming_no_tier_is_a_fleet_note():
    alerts = posthog([posthog_finding("query_time", ["a1"])], [{"id": "a1", "name": "slow queries"}])
    result = run(posthog=alerts)
    assert result["incidents"] == []
    assert "names no tier" in result["notes"][0]["message"]


def test_a_word_inside_another_does_not_name_a_tier():
    alerts = posthog([posthog_finding("query_time", ["a1"])], [{"id": "a1", "name": "contentious queries"}])
    assert run(posthog=alerts)["tiers"]["content"]["notes"] == []


def test_unreachable_posthog_is_a_note_never_fatal():
    result = run(posthog=posthog([], [], reachable=False, error="PostHog at http://127.0.0.1:9 refused"))
    assert result["incidents"] == []
    assert result["notes"][0]["check"] == "posthog_reachable"
    assert "refused" in result["notes"][0]["message"]


@pytest.mark.parametrize(
    ("uri", "status", "text"),
    [
        ({"status": 200, "url": "http://admin-panel/status"}, OK, "is up (HTTP 200)"),
        ({"status": 503, "url": "http://admin-panel/status", "failed": True}, CRITICAL, "is down (HTTP 503)"),
        ({"status": -1, "msg": "Request failed: <urlopen error refused>", "url": "http://a/s"}, CRITICAL, "refused"),
        ({"status": 200, "url": "http://ops:s3cret@admin-panel/status"}, OK, "http://admin-panel/status"),
    ],
)
def test_admin_panel(uri, status, text):
    result = run(admin_panel=uri)
    [note] = result["notes"]
    assert note["status"] == status and text in note["message"]
    assert "s3cret" not in str(result)
    if status == CRITICAL:
        assert "look at the application side" in result["summary"][-1]


@pytest.mark.parametrize(
    "uri",
    [
        {"status": 200, "url": "http://admin-panel/status?token=tok-Secret-1&view=short"},
        {"status": 200, "url": "https://ops:pw-Secret-1@admin-panel/status?api_key=tok-Secret-2"},
        {
            "status": -1,
            "url": "http://admin-panel/status?access_token=tok-Secret-1",
            "msg": "Request failed: GET http://admin-panel/status?access_token=tok-Secret-1 "
            "Authorization: Bearer tok-Secret-2",
        },
    ],
)
def test_admin_panel_secrets_in_the_url_or_the_error_never_reach_the_output(uri):
    result = run(admin_panel=uri)
    [note] = result["notes"]
    assert "admin-panel/status" in note["message"]
    assert "Secret" not in str(result), note["message"]
    assert "********" in note["message"]


def test_skipped_admin_panel_check_says_nothing():
    assert run(admin_panel={"skipped": True})["notes"] == []


# --------------------------------------------------------------------------- severity, urgency, ids


SEVERITY_TABLE = [
    (OUTAGE, CRITICAL, "critical"),
    (OUTAGE, WARNING, "critical"),
    (POOL, WARNING, "high"),
    (POOL, CRITICAL, "high"),
    (DATA, WARNING, "high"),
    (DATA, CRITICAL, "high"),
    (PERF, WARNING, "low"),
    (PERF, CRITICAL, "medium"),
    (SECURITY, CRITICAL, "critical"),
]


@pytest.mark.parametrize(("incident_type", "status", "severity"), SEVERITY_TABLE)
def test_severity_is_the_policy_default_raised_by_a_critical_finding(incident_type, status, severity):
    assert severity_of(incident_type, status, escalation.DEFAULT_TYPES) == severity


def test_raising_can_be_turned_off():
    assert severity_of(PERF, CRITICAL, escalation.DEFAULT_TYPES, raise_on_critical=False) == "low"


def test_severity_and_target_follow_the_inventory_policy():
    types = copy.deepcopy(escalation.DEFAULT_TYPES)
    types[PERF].update(default_severity="medium", response_target_minutes=20)
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("query_time", CRITICAL)])
    [incident] = run(servers, policy={"types": types})["incidents"]
    assert (incident["severity"], incident["response_target_minutes"]) == ("high", 20)
    assert incident["severity_response_minutes"] == 15


def test_a_policy_without_a_type_is_a_clear_error():
    types = copy.deepcopy(escalation.DEFAULT_TYPES)
    del types[SECURITY]
    with pytest.raises(TriageError, match="types lacks security_breach"):
        run(policy={"types": types})


def test_incidents_are_ordered_by_urgency_and_ids_are_per_tier_and_type():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("query_time", WARNING), problem("invalid_indexes", WARNING)])
    servers["content-1"] = server("down")
    result = run(servers, incident_id_base="INC-7")
    order = [(incident["tier"], incident["type"], incident["severity"]) for incident in result["incidents"]]
    assert order == [("content", OUTAGE, "critical"), ("oltp", DATA, "high"), ("oltp", PERF, "low")]
    assert [incident["incident_id"] for incident in result["incidents"]] == [
        "INC-7-content-db_outage",
        "INC-7-oltp-data_integrity",
        "INC-7-oltp-performance",
    ]
    assert result["most_urgent"]["extra_vars"] == {"incident_tier": "content", "incident_id": "INC-7-content-db_outage"}
    assert result["types_found"] == [OUTAGE, DATA, PERF]
    assert result["summary"][0].startswith("triage: 3 incident(s); most urgent db_outage on content")


def test_no_id_base_gives_no_ids():
    servers = healthy_servers()
    servers["content-1"] = server("down")
    [incident] = run(servers)["incidents"]
    assert incident["incident_id"] is None and incident["extra_vars"] == {"incident_tier": "content"}


def test_one_incident_per_tier_and_type_with_every_piece_of_evidence():
    servers = healthy_servers()
    servers["oltp-1"] = server(
        "primary", [problem("query_time", WARNING), problem("lockwait", CRITICAL), problem("txn_idle", WARNING)]
    )
    [incident] = run(servers)["incidents"]
    assert incident["type"] == PERF and incident["severity"] == "medium"
    assert [item["check"] for item in incident["evidence"]] == ["lockwait", "query_time", "txn_idle"]
    assert incident["headline"] == "oltp-1: lockwait is CRITICAL (and 2 more)"


def test_summary_says_what_which_playbook_severity_and_target():
    servers = healthy_servers()
    servers["oltp-1"] = server("down")
    servers["oltp-2"] = server("down")
    lines = run(servers, incident_id_base="T1")["tiers"]["oltp"]["summary"]
    assert lines[0] == "oltp: 1 incident(s) (no reachable primary)."
    assert lines[1].startswith("DB_OUTAGE - severity critical, respond within 5 min: no reachable primary: ")
    assert lines[2] == "  run playbooks/incident_db_outage.yml -e incident_tier=oltp -e incident_id=T1-oltp-db_outage"


def test_only_playbooks_that_exist_are_recommended():
    repo = pathlib.Path(__file__).resolve().parents[2]
    assert PLAYBOOKS == {
        OUTAGE: "playbooks/incident_db_outage.yml",
        POOL: "playbooks/incident_pool_exhaustion.yml",
        PERF: "playbooks/incident_performance.yml",
        DATA: "playbooks/incident_data_integrity.yml",
        SECURITY: "playbooks/incident_security_breach.yml",
    }
    for playbook in PLAYBOOKS.values():
        assert (repo / playbook).is_file(), playbook
    for incident_type in escalation.INCIDENT_TYPES:
        built = (repo / "playbooks" / ("incident_%s.yml" % incident_type)).is_file()
        assert built == (incident_type in PLAYBOOKS), "%s: list a built playbook in PLAYBOOKS" % incident_type


@pytest.mark.parametrize(
    ("incident_type", "steps"),
    [
        (SECURITY, "contain, investigate, document, notify stakeholders (Security Team, Legal)"),
        (DATA, "identify the scope, quarantine the affected data, begin recovery procedures"),
        ("replication_lag", "follow the site's procedure"),
    ],
)
def test_a_type_the_site_has_no_playbook_for_is_handled_by_hand(incident_type, steps):
    playbooks = dict(PLAYBOOKS, **{incident_type: ""})
    planned = runbook_for(incident_type, playbooks, "oltp", "T1-oltp-%s" % incident_type)
    assert planned == {
        "playbook": None,
        "runbook_status": "planned",
        "next_step": "no playbook yet (runbook planned); respond by hand: %s" % steps,
    }


def test_pool_exhaustion_points_to_its_playbook():
    available = runbook_for(POOL, PLAYBOOKS, "olap", "T1-olap-pool_exhaustion")
    assert available == {
        "playbook": "playbooks/incident_pool_exhaustion.yml",
        "runbook_status": "available",
        "next_step": "run playbooks/incident_pool_exhaustion.yml"
        " -e incident_tier=olap -e incident_id=T1-olap-pool_exhaustion",
    }


def test_the_performance_runbook_is_available():
    available = runbook_for(PERF, PLAYBOOKS, "oltp", "T1-oltp-performance")
    assert available == {
        "playbook": "playbooks/incident_performance.yml",
        "runbook_status": "available",
        "next_step": "run playbooks/incident_performance.yml -e incident_tier=oltp -e incident_id=T1-oltp-performance",
    }


def test_a_site_playbook_makes_a_planned_runbook_available():
    available = runbook_for(DATA, {DATA: "AWX: quarantine"}, "oltp", None)
    assert available == {
        "playbook": "AWX: quarantine",
        "runbook_status": "available",
        "next_step": "run AWX: quarantine -e incident_tier=oltp",
    }


def test_the_security_breach_runbook_is_fed_the_suspect_roles():
    items = [
        {"user": "intruder", "source": "postgres"},
        {"user": "intruder", "source": "postgres"},
        {"user": "other", "source": "postgres"},
        {"user": "bad'name", "source": "postgres"},
        {"user": None, "source": "postgres"},
    ]
    suspects = suspect_roles(SECURITY, items)
    assert suspects == ["intruder", "other"]
    assert suspect_roles(PERF, items) == []
    available = runbook_for(SECURITY, PLAYBOOKS, "oltp", "T1-oltp-security_breach", suspects)
    assert available == {
        "playbook": "playbooks/incident_security_breach.yml",
        "runbook_status": "available",
        "next_step": "run playbooks/incident_security_breach.yml -e incident_tier=oltp"
        " -e incident_id=T1-oltp-security_breach"
        ' -e \'{"security_suspect_roles": ["intruder", "other"]}\'',
    }


def test_summary_and_stats_of_a_planned_runbook():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", problems=[problem("lockwait", CRITICAL)])
    # A site without the performance playbook (an empty name): its runbook is planned there.
    result = run(servers, incident_id_base="T1", playbooks={PERF: ""})
    [incident] = result["incidents"]
    assert (incident["type"], incident["playbook"], incident["runbook_status"]) == (PERF, None, "planned")
    lines = result["tiers"]["oltp"]["summary"]
    assert (
        lines[2]
        == "  no playbook yet (runbook planned); respond by hand: check the queries, optimize indexes, scale resources"
    )
    assert not any("incident_performance.yml" in line for line in lines)


def test_playbooks_can_be_renamed_per_site():
    servers = healthy_servers()
    servers["oltp-1"] = server("down")
    [incident] = run(servers, playbooks={OUTAGE: "AWX: DB outage"})["incidents"]
    assert incident["playbook"] == "AWX: DB outage"


def test_notes_in_the_summary_are_capped():
    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("backends", WARNING, "slots %d" % n) for n in range(5)])
    lines = run(servers)["tiers"]["oltp"]["summary"]
    assert sum(line.startswith("Note: ") for line in lines) == 4
    assert lines[-1] == "Note: and 2 more (see the tier's notes)"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tiers": []}, "no tier to triage"),
        ({"tiers": [{"name": "oltp"}, {"name": "oltp"}]}, "oltp appears twice"),
        ({"tiers": TIERS, "health": {"status": "OK"}}, "expected a fleet-mode pg_health result"),
    ],
)
def test_bad_input_is_a_clear_error(params, message):
    params.setdefault("health", {"servers": {}})
    with pytest.raises(TriageError, match=message):
        triage(params)


# --------------------------------------------------------------------------- what AWX receives


def test_stats_carry_the_most_urgent_incident_for_the_next_job_template():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.triage import run as run_module

    servers = healthy_servers()
    servers["oltp-1"] = server("primary", [problem("query_time", WARNING)])
    servers["content-1"] = server("down")
    result = run_module({"tiers": TIERS, "health": {"servers": servers}, "incident_id_base": "A1"}, check_mode=True)
    stats = result["stats"]
    assert (stats["incident_tier"], stats["incident_type"], stats["incident_id"], stats["incident_severity"]) == (
        "content",
        OUTAGE,
        "A1-content-db_outage",
        "critical",
    )
    triage_stats = stats["dbops_triage"]
    assert triage_stats["check_mode"] is True
    assert triage_stats["types_found"] == [OUTAGE, PERF]
    assert triage_stats["tiers"]["oltp"] == {
        "status": "incident",
        "primary": "oltp-1",
        "types": [PERF],
        "incident_ids": ["A1-oltp-performance"],
    }
    assert triage_stats["by_type"][PERF] == {
        "incident_tier": "oltp",
        "incident_id": "A1-oltp-performance",
        "incident_severity": "low",
    }
    assert "evidence" not in triage_stats["incidents"][0]
    assert [(item["type"], item["playbook"], item["runbook_status"]) for item in triage_stats["incidents"]] == [
        (OUTAGE, "playbooks/incident_db_outage.yml", "available"),
        (PERF, "playbooks/incident_performance.yml", "available"),
    ]


def test_no_incident_publishes_no_incident_keys():
    from ansible_collections.penguinmails.dbops.plugins.module_utils.triage import run as run_module

    stats = run_module({"tiers": TIERS, "health": {"servers": healthy_servers()}}, check_mode=False)["stats"]
    assert set(stats) == {"dbops_triage"}
    assert stats["dbops_triage"]["incidents"] == []
