# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Triage: which incident is this, how severe, which playbook runs next.

Pure functions over the results the diagnose role collected (no I/O):

* ``health`` - one fleet-mode pg_health result (``servers`` keyed by inventory host);
* ``pgbouncers`` - pgbouncer_pools results keyed by PgBouncer host;
* ``posthog`` - a posthog_alerts result; ``admin_panel`` - an ansible.builtin.uri result.

Per tier it discovers the live primary from the servers (never from the inventory),
turns findings into evidence of an incident type with the table ``RULES``, applies
the tier-level rules (no reachable primary, more than one primary, security), and
builds one incident per tier and type with its severity and response target from
the incident policy (escalation.py's tables, or the inventory's). Everything that
is not OK and opens no incident is kept as a note, so nothing seen is hidden.

docs/triage.md explains each rule and why.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.penguinmails.dbops.plugins.module_utils import escalation
from ansible_collections.penguinmails.dbops.plugins.module_utils.findings import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    at_least,
    rank,
)
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_text
from ansible_collections.penguinmails.dbops.plugins.module_utils.slicing import slice_outage_view

OUTAGE, POOL, DATA, PERF, SECURITY = "db_outage", "pool_exhaustion", "data_integrity", "performance", "security_breach"
# Ties in urgency (same severity and response target) are broken in this order.
TYPE_ORDER = (OUTAGE, SECURITY, POOL, DATA, PERF)

# The playbook of each incident type this collection ships (a site may add or rename its own
# with the `playbooks` option). Only playbooks that exist are named.
PLAYBOOKS = {
    OUTAGE: "playbooks/incident_db_outage.yml",
    POOL: "playbooks/incident_pool_exhaustion.yml",
    PERF: "playbooks/incident_performance.yml",
    DATA: "playbooks/incident_data_integrity.yml",
    SECURITY: "playbooks/incident_security_breach.yml",
}
RUNBOOK_AVAILABLE, RUNBOOK_PLANNED = "available", "planned"
# The seed's response steps, for a type a site has no playbook for (``playbooks: {type: ''}``).
MANUAL_STEPS = {
    DATA: "identify the scope, quarantine the affected data, begin recovery procedures",
    PERF: "check the queries, optimize indexes, scale resources",
    SECURITY: "contain, investigate, document, notify stakeholders (Security Team, Legal)",
}

SEVERITY_ORDER = ("low", "medium", "high", "critical")
DEFAULT_EXPECTED_SUPERUSERS = ("postgres",)
EVIDENCE_IN_HEADLINE = 1
NOTES_IN_SUMMARY = 3


class TriageError(ValueError):
    """The input cannot be classified (a bad allow list, an unknown type in the policy)."""


@dataclass(frozen=True)
class Rule:
    """A finding of `check` from `source` at `minimum` or worse is evidence of `incident_type`.

    scope "member": every server's finding counts (the figure is the server's own:
    sessions, locks, replay, data pages). scope "primary": the figure is catalog data
    that standbys replicate (indexes, sequences, xid ages), read from the primary only
    so one problem is reported once.
    """

    source: str
    check: str
    minimum: str
    incident_type: str
    scope: str = "member"


RULES: Tuple[Rule, ...] = (
    # PgBouncer: clients waiting, or about to (the seed's alert is a pool over 90 %).
    Rule("pgbouncer", "connection", CRITICAL, POOL),
    Rule("pgbouncer", "waiting_clients", WARNING, POOL),
    Rule("pgbouncer", "maxwait", WARNING, POOL),
    Rule("pgbouncer", "utilization", CRITICAL, POOL),
    Rule("pgbouncer", "client_connections", WARNING, POOL),
    Rule("pgbouncer", "database_state", WARNING, POOL),
    # PostgreSQL connection slots nearly gone: the pools behind them are exhausted too.
    Rule("postgres", "backends", CRITICAL, POOL),
    # Performance degradation: the seed's "check queries", locks, replication delay.
    Rule("postgres", "query_time", WARNING, PERF),
    Rule("postgres", "txn_time", WARNING, PERF),
    Rule("postgres", "txn_idle", WARNING, PERF),
    Rule("postgres", "lockwait", WARNING, PERF),
    Rule("postgres", "hot_standby_delay", WARNING, PERF),
    Rule("postgres", "replication_slots", WARNING, PERF),
    Rule("postgres", "deadlocks", WARNING, PERF),
    Rule("postgres", "conflicts", WARNING, PERF),
    Rule("postgres", "txn_wraparound", WARNING, PERF, scope="primary"),
    # Data integrity: corrupted pages, indexes that no longer index, key space running out.
    Rule("postgres", "checksum_failures", WARNING, DATA),
    Rule("postgres", "invalid_indexes", WARNING, DATA, scope="primary"),
    Rule("postgres", "sequence", WARNING, DATA, scope="primary"),
)
RULES_BY_KEY = {(rule.source, rule.check): rule for rule in RULES}

# PostHog conditions (posthog_alerts' finding check posthog_<name>) and the type they corroborate.
POSTHOG_TYPES = {"posthog_query_time": PERF, "posthog_connection_pool": POOL}

# When a tier has no primary, these are what the outage looks like from the pools and the
# standbys (clients queue, replay stops): evidence of the outage, not incidents of their own.
SYMPTOMS_OF_OUTAGE = (POOL, PERF)

Evidence = Dict[str, Any]


# --------------------------------------------------------------------------- small helpers


def rule_for(source: str, check: str) -> Optional[Rule]:
    return RULES_BY_KEY.get((source, check))


def finding_type(source: str, found: Mapping[str, Any]) -> Optional[str]:
    """The incident type a finding is evidence of, or None (not OK findings then become notes)."""
    rule = rule_for(source, str(found.get("check")))
    if rule is None or not at_least(found.get("status"), rule.minimum):
        return None
    return rule.incident_type


def evidence(
    incident_type: Optional[str],
    source: str,
    host: Optional[str],
    check: str,
    status: str,
    message: str,
    **extra: Any,
) -> Evidence:
    item = {
        "type": incident_type,
        "source": source,
        "host": host,
        "check": check,
        "status": status,
        "message": redact_text(message),
    }
    item.update(extra)
    return item


def from_finding(incident_type: Optional[str], source: str, host: str, found: Mapping[str, Any]) -> Evidence:
    return evidence(
        incident_type,
        source,
        host,
        str(found.get("check")),
        str(found.get("status")),
        "%s: %s" % (host, found.get("message")),
        value=found.get("value"),
        threshold=found.get("threshold"),
        subject=found.get("subject"),
    )


def mentions(text: str, word: str) -> bool:
    """`word` appears in `text` as a whole word (case-insensitive; _ and - separate words)."""
    return bool(word) and re.search(r"(?<![a-z0-9])%s(?![a-z0-9])" % re.escape(word.lower()), text.lower()) is not None


def without_userinfo(url: str) -> str:
    """A URL as messages show it, without user:password@ (evidence() redacts what else it carries)."""
    return re.sub(r"(?<=://)[^/@\s]*@", "", url or "")


# --------------------------------------------------------------------------- tiers and roles


def normalise_tiers(
    tiers: Sequence[Mapping[str, Any]], databases: Optional[Mapping[str, Any]] = None
) -> List[Dict[str, Any]]:
    """[{name, members, database}]; a tier's database comes from its entry, else from `databases`."""
    databases = databases or {}
    seen = set()
    result = []
    for tier in tiers:
        name = str(tier.get("name") or "")
        if not name:
            raise TriageError("tiers: every entry needs a name")
        if name in seen:
            raise TriageError("tiers: %s appears twice" % name)
        seen.add(name)
        result.append(
            {
                "name": name,
                "members": [str(member) for member in tier.get("members") or []],
                "database": tier.get("database") or databases.get(name) or None,
            }
        )
    return result


def member_roles(members: Sequence[str], servers: Mapping[str, Any]) -> Dict[str, str]:
    """primary / standby / down for every member, as the servers said (a member not checked is down)."""
    roles = {}
    for member in members:
        result = servers.get(member) or {}
        roles[member] = str(result.get("role") or "down") if result.get("reachable") else "down"
    return roles


def why_down(member: str, servers: Mapping[str, Any]) -> str:
    result = servers.get(member)
    if not result:
        return "%s was not checked" % member
    kind = result.get("conn_err_kind")
    return "%s does not answer%s" % (member, " (%s)" % kind if kind else "")


def outage_evidence(members: Sequence[str], roles: Mapping[str, str], servers: Mapping[str, Any]) -> List[Evidence]:
    """Tier-level rule: a tier needs exactly one reachable primary."""
    primaries = [member for member in members if roles[member] == "primary"]
    if len(primaries) > 1:
        return [
            evidence(
                OUTAGE,
                "topology",
                None,
                "primary",
                CRITICAL,
                "split brain: %d servers say they are primary (%s); the outage playbook refuses until one is fenced"
                % (len(primaries), ", ".join(primaries)),
                primaries=primaries,
            )
        ]
    if primaries:
        return []
    if not members:
        return [evidence(OUTAGE, "topology", None, "primary", CRITICAL, "the tier has no members in the inventory")]
    parts = [
        why_down(member, servers) if roles[member] == "down" else "%s is a %s" % (member, roles[member])
        for member in members
    ]
    standbys = [member for member in members if roles[member] == "standby"]
    message = "no reachable primary: %s" % "; ".join(parts)
    if not standbys:
        message += "; no member answers at all"
    return [evidence(OUTAGE, "topology", None, "primary", CRITICAL, message, standbys=standbys)]


# --------------------------------------------------------------------------- PostgreSQL findings


def postgres_evidence(
    members: Sequence[str], roles: Mapping[str, str], servers: Mapping[str, Any], primary: Optional[str]
) -> List[Evidence]:
    """Evidence and notes from every member's pg_health findings (type None = a note)."""
    reachable = [member for member in members if roles[member] != "down"]
    # Catalog-wide figures once: from the primary, or without one from the first member that answers.
    catalog_source = primary or (reachable[0] if reachable else None)
    items: List[Evidence] = []
    for member in members:
        result = servers.get(member) or {}
        if roles[member] == "down":
            if primary is not None:
                items.append(
                    evidence(
                        None,
                        "postgres",
                        member,
                        "connection",
                        CRITICAL,
                        "%s: the tier runs without it; rejoin or repair it (%s)"
                        % (why_down(member, servers), result.get("conn_err_msg") or "not checked"),
                    )
                )
            continue
        for found in result.get("problems") or []:
            rule = rule_for("postgres", str(found.get("check")))
            if rule is not None and rule.scope == "primary" and member != catalog_source:
                continue
            items.append(from_finding(finding_type("postgres", found), "postgres", member, found))
    return items


def allowed(address: str, networks: Sequence[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if getattr(ip, "ipv4_mapped", None) is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == network.version and ip in network for network in networks)


def parse_networks(cidrs: Iterable[str]) -> List[Any]:
    networks = []
    for cidr in cidrs or []:
        try:
            networks.append(ipaddress.ip_network(str(cidr).strip(), strict=False))
        except ValueError as error:
            raise TriageError("allowed_client_cidrs: %r is not an address or CIDR range (%s)" % (cidr, error)) from None
    return networks


def security_evidence(
    members: Sequence[str],
    roles: Mapping[str, str],
    servers: Mapping[str, Any],
    networks: Sequence[Any],
    expected_superusers: Sequence[str],
) -> List[Evidence]:
    """Tier-level rule: superuser sessions of unexpected roles; logins from outside the allow list.

    Unix-socket sessions (no client address) are local to the server and pass the address rule.
    """
    items: List[Evidence] = []
    for member in members:
        if roles[member] == "down":
            continue
        figures = (servers.get(member) or {}).get("figures") or {}
        if "logins" not in figures:
            items.append(
                evidence(
                    None,
                    "postgres",
                    member,
                    "logins",
                    UNKNOWN,
                    "%s: logins not checked (add logins to the checks)" % member,
                )
            )
            continue
        for group in figures["logins"] or []:
            user = group.get("user") or "?"
            address = group.get("client_addr")
            reasons = []
            if group.get("superuser") and user not in expected_superusers:
                reasons.append(
                    "%s is a superuser not in the expected list (%s)" % (user, ", ".join(expected_superusers))
                )
            if networks and address and not allowed(address, networks):
                reasons.append("%s is outside the allowed client networks" % address)
            if not reasons:
                continue
            kind = "superuser session" if group.get("superuser") else "session"
            if group.get("backend_type") == "walsender":
                kind = "replication " + kind
            pids = [str(pid) for pid in group.get("pids") or []]
            pid_text = "%s %s" % ("pid" if len(pids) == 1 else "pids", ", ".join(pids))
            items.append(
                evidence(
                    SECURITY,
                    "postgres",
                    member,
                    "logins",
                    CRITICAL,
                    "%s: %d %s(s) of %s from %s (%s): %s"
                    % (
                        member,
                        group.get("sessions") or 0,
                        kind,
                        user,
                        address or "local socket",
                        pid_text,
                        "; ".join(reasons),
                    ),
                    user=user,
                    client_addr=address,
                    superuser=bool(group.get("superuser")),
                    pids=list(group.get("pids") or []),
                )
            )
    return items


# --------------------------------------------------------------------------- PgBouncer, PostHog, admin panel


def served_databases(result: Mapping[str, Any]) -> Optional[List[str]]:
    """Databases a PgBouncer serves (SHOW DATABASES), None when unknown (unreachable)."""
    if not result.get("reachable"):
        return None
    return [str(row.get("name")) for row in result.get("databases") or [] if row.get("name")]


def pgbouncer_evidence(tiers: Sequence[Mapping[str, Any]], pgbouncers: Mapping[str, Any]) -> Dict[str, List[Evidence]]:
    """Per tier, evidence and notes from each PgBouncer's findings.

    A pool finding belongs to the tier whose database the pool serves; a PgBouncer-wide
    finding (unreachable, max_client_conn) to every tier it serves (every tier when unknown).
    """
    per_tier: Dict[str, List[Evidence]] = {tier["name"]: [] for tier in tiers}
    by_database = {tier["database"]: tier["name"] for tier in tiers if tier.get("database")}
    for host, result in (pgbouncers or {}).items():
        result = result or {}
        served = served_databases(result)
        for found in result.get("findings") or []:
            if found.get("status") == OK:
                continue
            database = found.get("database")
            if database:
                names = [by_database[database]] if database in by_database else []
            else:
                names = [tier["name"] for tier in tiers if served is None or tier.get("database") in served]
            item = from_finding(finding_type("pgbouncer", found), "pgbouncer", host, found)
            for name in names:
                per_tier[name].append(dict(item))
    return per_tier


def posthog_alert_names(result: Mapping[str, Any], found: Mapping[str, Any]) -> List[str]:
    ids = {str(alert_id) for alert_id in found.get("firing_alerts") or []}
    names = []
    for alert in result.get("firing") or result.get("alerts") or []:
        if str(alert.get("id")) in ids:
            names.append(" / ".join(str(part) for part in (alert.get("name"), alert.get("insight_name")) if part))
    return names


def posthog_evidence(
    tiers: Sequence[Mapping[str, Any]], result: Optional[Mapping[str, Any]]
) -> Tuple[Dict[str, List[Evidence]], List[Evidence]]:
    """PostHog corroborates: per tier (when an alert names the tier or its database), and fleet notes.

    PostHog never opens an incident on its own: the servers are the source of truth.
    """
    per_tier: Dict[str, List[Evidence]] = {tier["name"]: [] for tier in tiers}
    fleet: List[Evidence] = []
    if not result:
        return per_tier, fleet
    if not result.get("reachable", True) or result.get("error"):
        fleet.append(
            evidence(
                None,
                "posthog",
                None,
                "posthog_reachable",
                WARNING,
                "PostHog could not be read (%s); triage went on with the servers' own figures"
                % (result.get("error") or result.get("error_kind") or "unreachable"),
            )
        )
        return per_tier, fleet
    for found in result.get("findings") or []:
        if found.get("status") == OK or found.get("check") == "posthog_reachable":
            continue
        names = posthog_alert_names(result, found)
        corroborates = POSTHOG_TYPES.get(str(found.get("check")))
        tiers_named = [
            tier["name"]
            for tier in tiers
            if any(mentions(name, tier["name"]) or mentions(name, tier.get("database") or "") for name in names)
        ]
        message = "PostHog: %s" % found.get("message")
        item = evidence(
            corroborates, "posthog", None, str(found.get("check")), str(found.get("status")), message, alerts=names
        )
        if tiers_named:
            for name in tiers_named:
                per_tier[name].append(dict(item))
        else:
            fleet.append(dict(item, type=None, message=message + " (names no tier: corroborate with the servers)"))
    return per_tier, fleet


def admin_panel_evidence(result: Optional[Mapping[str, Any]]) -> List[Evidence]:
    """The seed's `curl -f http://admin-panel/status`: up when it answers 2xx or 3xx."""
    if not result or result.get("skipped"):
        return []
    url = without_userinfo(
        str(result.get("url") or result.get("invocation", {}).get("module_args", {}).get("url") or "")
    )
    status = result.get("status")
    if isinstance(status, int) and 200 <= status < 400 and not result.get("failed"):
        return [
            evidence(None, "admin_panel", None, "admin_panel", OK, "admin panel %s is up (HTTP %d)" % (url, status))
        ]
    if isinstance(status, int) and status > 0:
        why = "HTTP %d" % status
    else:
        why = str(result.get("msg") or "no answer").split("\n", maxsplit=1)[0][:200]
    return [
        evidence(
            None,
            "admin_panel",
            None,
            "admin_panel",
            CRITICAL,
            "admin panel %s is down (%s)" % (url, why),
        )
    ]


# --------------------------------------------------------------------------- severity and incidents


def severity_of(incident_type: str, status: str, types: Mapping[str, Any], raise_on_critical: bool = True) -> str:
    """The type's default severity; a CRITICAL finding raises a low or medium default one level.

    The seed's levels describe impact. A query stuck past the critical threshold or an xid
    age near wraparound impairs more than "performance degradation" (low) says.
    """
    try:
        base = str(types[incident_type]["default_severity"])
    except (KeyError, TypeError):
        raise TriageError("incident policy: type %s has no default_severity" % incident_type) from None
    if raise_on_critical and status == CRITICAL and base in ("low", "medium"):
        return SEVERITY_ORDER[SEVERITY_ORDER.index(base) + 1]
    return base


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else -1


def incident_id_for(base: Optional[str], tier: str, incident_type: str) -> Optional[str]:
    if not base:
        return None
    return "%s-%s-%s" % (base, re.sub(r"[^A-Za-z0-9._-]", "_", tier), incident_type)


def build_incident(
    tier: str,
    incident_type: str,
    items: List[Evidence],
    policy: Mapping[str, Any],
    playbooks: Mapping[str, str],
    id_base: Optional[str],
    raise_on_critical: bool,
) -> Dict[str, Any]:
    types = policy["types"]
    for item in items:
        item["severity"] = severity_of(incident_type, item["status"], types, raise_on_critical)
    # PostHog corroborates; only the servers' own evidence sets the severity.
    own = [item for item in items if item["source"] != "posthog"] or items
    severity = max((item["severity"] for item in own), key=severity_rank)
    try:
        chosen = escalation.classify(incident_type, severity, types, policy["severity_levels"])
    except escalation.PolicyError as error:
        raise TriageError("incident policy: %s" % error) from None
    # The servers' own evidence first, worst first; PostHog only corroborates.
    ranked = sorted(items, key=lambda item: (item["source"] == "posthog", -rank(item["status"])))
    headline = "; ".join(item["message"] for item in ranked[:EVIDENCE_IN_HEADLINE])
    if len(ranked) > EVIDENCE_IN_HEADLINE:
        headline += " (and %d more)" % (len(ranked) - EVIDENCE_IN_HEADLINE)
    incident_id = incident_id_for(id_base, tier, incident_type)
    extra_vars: Dict[str, Any] = {"incident_tier": tier}
    if incident_id:
        extra_vars["incident_id"] = incident_id
    suspects = suspect_roles(incident_type, items)
    if suspects:
        extra_vars["security_suspect_roles"] = suspects
    return {
        "tier": tier,
        "type": incident_type,
        "label": str(chosen["type"].get("label") or incident_type),
        "severity": severity,
        "response_target_minutes": chosen["type"]["response_target_minutes"],
        "severity_response_minutes": chosen["severity_policy"].get("response_minutes"),
        **runbook_for(incident_type, playbooks, tier, incident_id, suspects),
        "extra_vars": extra_vars,
        "incident_id": incident_id,
        "headline": headline,
        "evidence": ranked,
    }


def suspect_roles(incident_type: str, items: Sequence[Evidence]) -> List[str]:
    """The roles a security incident's evidence names, for the security breach playbook (names it would
    refuse are left for the operator to judge)."""
    if incident_type != SECURITY:
        return []
    users = {str(item["user"]) for item in items if item.get("user") and item.get("user") != "?"}
    return sorted(user for user in users if re.match(r"^[A-Za-z0-9_.$-]{1,63}$", user))


def runbook_for(
    incident_type: str,
    playbooks: Mapping[str, str],
    tier: str,
    incident_id: Optional[str],
    suspects: Sequence[str] = (),
) -> Dict[str, Any]:
    """The playbook that handles the type (or null while its runbook is planned) and the next step in words."""
    playbook = playbooks.get(incident_type) or None
    if playbook is None:
        steps = MANUAL_STEPS.get(incident_type, "follow the site's procedure")
        return {
            "playbook": None,
            "runbook_status": RUNBOOK_PLANNED,
            "next_step": "no playbook yet (runbook planned); respond by hand: %s" % steps,
        }
    run = "%s -e incident_tier=%s" % (playbook, tier)
    if incident_id:
        run += " -e incident_id=%s" % incident_id
    if suspects:
        run += " -e '%s'" % json.dumps({"security_suspect_roles": list(suspects)})
    return {"playbook": playbook, "runbook_status": RUNBOOK_AVAILABLE, "next_step": "run %s" % run}


def urgency(incident: Mapping[str, Any], tier_order: Mapping[str, int]) -> Tuple[int, float, int, int]:
    return (
        -severity_rank(incident["severity"]),
        float(incident["response_target_minutes"]),
        TYPE_ORDER.index(incident["type"]),
        tier_order.get(incident["tier"], 0),
    )


def group_incidents(items: Sequence[Evidence]) -> Tuple[Dict[str, List[Evidence]], List[Evidence]]:
    """Evidence by incident type, with outage symptoms folded into the outage; the rest are notes."""
    by_type: Dict[str, List[Evidence]] = {}
    notes: List[Evidence] = []
    for item in items:
        if item["type"] is None:
            notes.append(item)
        else:
            by_type.setdefault(item["type"], []).append(item)
    # PostHog alone opens nothing: keep its items only where the servers found the same type.
    for incident_type in list(by_type):
        if all(item["source"] == "posthog" for item in by_type[incident_type]):
            for item in by_type.pop(incident_type):
                notes.append(dict(item, type=None, message=item["message"] + " (the servers show no such problem now)"))
    if OUTAGE in by_type:
        for incident_type in SYMPTOMS_OF_OUTAGE:
            for item in by_type.pop(incident_type, []):
                by_type[OUTAGE].append(dict(item, type=OUTAGE, symptom=True))
    return by_type, notes


# --------------------------------------------------------------------------- summary


def tier_summary(tier: Mapping[str, Any]) -> List[str]:
    """A few readable lines: what is wrong, which playbook, severity, response target."""
    roles = tier["roles"]
    standbys = [name for name, role in roles.items() if role == "standby"]
    down = [name for name, role in roles.items() if role == "down"]
    if tier["primary"]:
        where = "primary %s, %d standby(s) answering%s" % (
            tier["primary"],
            len(standbys),
            ", %s down" % ", ".join(down) if down else "",
        )
    elif len(tier["primaries"]) > 1:
        where = "%d primaries: %s" % (len(tier["primaries"]), ", ".join(tier["primaries"]))
    else:
        where = "no reachable primary"
    if not tier["incidents"]:
        lines = ["%s: OK (%s); no incident." % (tier["name"], where)]
    else:
        lines = ["%s: %d incident(s) (%s)." % (tier["name"], len(tier["incidents"]), where)]
    for incident in tier["incidents"]:
        lines.append(
            "%s - severity %s, respond within %s min: %s"
            % (
                incident["type"].upper(),
                incident["severity"],
                format_minutes(incident["response_target_minutes"]),
                incident["headline"],
            )
        )
        lines.append("  %s" % incident["next_step"])
    notes = [note for note in tier["notes"] if note["status"] != OK]
    for note in notes[:NOTES_IN_SUMMARY]:
        lines.append("Note: %s" % note["message"])
    if len(notes) > NOTES_IN_SUMMARY:
        lines.append("Note: and %d more (see the tier's notes)" % (len(notes) - NOTES_IN_SUMMARY))
    return lines


def format_minutes(minutes: Any) -> str:
    value = float(minutes)
    return ("%d" % value) if value == int(value) else ("%.1f" % value)


def fleet_summary(notes: Sequence[Evidence], incidents: Sequence[Mapping[str, Any]]) -> List[str]:
    if incidents:
        first = incidents[0]
        head = "triage: %d incident(s); most urgent %s on %s (severity %s, respond within %s min)." % (
            len(incidents),
            first["type"],
            first["tier"],
            first["severity"],
            format_minutes(first["response_target_minutes"]),
        )
    else:
        head = "triage: no incident."
    lines = [head]
    lines.extend(("Note: " if note["status"] != OK else "") + note["message"] for note in notes)
    down = [note for note in notes if note["source"] == "admin_panel" and note["status"] != OK]
    if down and not incidents:
        lines.append("The databases look healthy while the admin panel is down: look at the application side.")
    return lines


# --------------------------------------------------------------------------- entry point


def default_policy() -> Dict[str, Any]:
    defaults = escalation.default_policy()
    return {"types": defaults["types"], "severity_levels": defaults["severity_levels"]}


def resolve_policy(policy: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    resolved = default_policy()
    for part in ("types", "severity_levels"):
        if policy and policy.get(part):
            resolved[part] = policy[part]
    missing = [name for name in TYPE_ORDER if name not in resolved["types"]]
    if missing:
        raise TriageError("incident policy: types lacks %s" % ", ".join(missing))
    return resolved


def sliced_outage_evidence(
    members: Sequence[str],
    roles: Mapping[str, str],
    servers: Mapping[str, Any],
    tier_members: Optional[Sequence[str]],
) -> Tuple[List[Evidence], Dict[str, Any]]:
    """Tier-level rule for an AWX job slice, which sees only its part of the tier (slicing.py)."""
    view = slice_outage_view(members, roles, servers, tier_members)
    if view["verdict"] == "primary":
        return outage_evidence(members, roles, servers), view
    if view["verdict"] != "outage":
        return [], view
    items = outage_evidence(members, roles, servers)
    for item in items:
        item["message"] = "%s (job slice: %s)" % (item["message"], view["reason"])
    return items, view


def classify_tier(
    tier: Mapping[str, Any],
    servers: Mapping[str, Any],
    extra: Sequence[Evidence],
    networks: Sequence[Any],
    expected_superusers: Sequence[str],
    sliced: bool = False,
    tier_members: Optional[Sequence[str]] = None,
) -> Tuple[Dict[str, Any], List[Evidence]]:
    members = tier["members"]
    roles = member_roles(members, servers)
    primaries = [member for member in members if roles[member] == "primary"]
    primary = primaries[0] if len(primaries) == 1 else None
    view = None
    if sliced:
        items, view = sliced_outage_evidence(members, roles, servers, tier_members)
    else:
        items = outage_evidence(members, roles, servers)
    items += postgres_evidence(members, roles, servers, primary)
    if view is not None and view["verdict"] in ("upstream_alive", "not_owner"):
        # The slice sees no primary but judges the tier alive (or leaves it to its owner): a member
        # of its own that does not answer is still worth saying.
        items += [
            evidence(
                None,
                "postgres",
                member,
                "connection",
                CRITICAL,
                "%s (job slice: %s)" % (why_down(member, servers), view["reason"]),
            )
            for member in members
            if roles[member] == "down"
        ]
    items += security_evidence(members, roles, servers, networks, expected_superusers)
    items += list(extra)
    state = {
        "name": tier["name"],
        "database": tier.get("database"),
        "members": list(members),
        "roles": roles,
        "primary": primary,
        "primaries": primaries,
    }
    if view is not None:
        state["slice_view"] = view
    return state, items


def triage(params: Mapping[str, Any]) -> Dict[str, Any]:
    """Classify every tier. See the dbops_triage module for the parameters and the result."""
    tiers = normalise_tiers(params.get("tiers") or [], params.get("databases"))
    if not tiers:
        raise TriageError("tiers: no tier to triage; name at least one inventory group of PostgreSQL servers")
    health = params.get("health") or {}
    servers = health.get("servers")
    if servers is None:
        raise TriageError("health: expected a fleet-mode pg_health result (with servers); got none")
    policy = resolve_policy(params.get("policy"))
    playbooks = dict(PLAYBOOKS, **(params.get("playbooks") or {}))
    networks = parse_networks(params.get("allowed_client_cidrs") or [])
    expected = [str(user) for user in (params.get("expected_superusers") or DEFAULT_EXPECTED_SUPERUSERS)]
    raise_on_critical = params.get("raise_severity_on_critical", True)
    id_base = params.get("incident_id_base")
    sliced = bool(params.get("sliced"))
    all_members = params.get("tier_members") or {}
    for name, listed in all_members.items():
        if not isinstance(listed, list) or not all(isinstance(member, str) and member for member in listed):
            raise TriageError("tier_members: %s must be a list of host names (got %r)" % (name, listed))

    pool_items = pgbouncer_evidence(tiers, params.get("pgbouncers") or {})
    posthog_items, fleet_notes = posthog_evidence(tiers, params.get("posthog"))
    fleet_notes += admin_panel_evidence(params.get("admin_panel"))

    tier_order = {tier["name"]: index for index, tier in enumerate(tiers)}
    results: Dict[str, Any] = {}
    incidents: List[Dict[str, Any]] = []
    for tier in tiers:
        state, items = classify_tier(
            tier,
            servers,
            pool_items[tier["name"]] + posthog_items[tier["name"]],
            networks,
            expected,
            sliced,
            all_members.get(tier["name"]),
        )
        by_type, notes = group_incidents(items)
        tier_incidents = [
            build_incident(
                tier["name"], incident_type, by_type[incident_type], policy, playbooks, id_base, raise_on_critical
            )
            for incident_type in by_type
        ]
        tier_incidents.sort(key=lambda incident: urgency(incident, tier_order))
        state.update(
            status="incident" if tier_incidents else ("notes" if any(n["status"] != OK for n in notes) else "ok"),
            types=[incident["type"] for incident in tier_incidents],
            incidents=tier_incidents,
            notes=notes,
        )
        state["summary"] = tier_summary(state)
        results[tier["name"]] = state
        incidents.extend(tier_incidents)
    incidents.sort(key=lambda incident: urgency(incident, tier_order))
    return {
        "changed": False,
        "tiers": results,
        "incidents": incidents,
        "types_found": [name for name in TYPE_ORDER if any(incident["type"] == name for incident in incidents)],
        "most_urgent": incidents[0] if incidents else None,
        "notes": fleet_notes,
        "summary": fleet_summary(fleet_notes, incidents),
    }


INCIDENT_STAT_KEYS = (
    "tier",
    "type",
    "severity",
    "response_target_minutes",
    "playbook",
    "runbook_status",
    "incident_id",
    "extra_vars",
    "headline",
)


def awx_stats(result: Mapping[str, Any], id_base: Optional[str], check_mode: bool) -> Dict[str, Any]:
    """What set_stats publishes: a compact classification, and the most urgent incident's extra vars.

    AWX passes a job's stats to the next job of a workflow as extra vars, so the remediation
    job template gets incident_tier and incident_id and continues the record triage opened.
    """
    incidents = [{key: incident[key] for key in INCIDENT_STAT_KEYS} for incident in result["incidents"]]
    by_type: Dict[str, Any] = {}
    for incident in incidents:
        by_type.setdefault(incident["type"], dict(incident["extra_vars"], incident_severity=incident["severity"]))
    stats: Dict[str, Any] = {
        "dbops_triage": {
            "incident_id_base": id_base,
            "check_mode": bool(check_mode),
            "types_found": list(result["types_found"]),
            "tiers": {
                name: {
                    "status": tier["status"],
                    "primary": tier["primary"],
                    "types": list(tier["types"]),
                    "incident_ids": [incident["incident_id"] for incident in tier["incidents"]],
                }
                for name, tier in result["tiers"].items()
            },
            "incidents": incidents,
            "by_type": by_type,
        }
    }
    urgent = result["most_urgent"]
    if urgent:
        stats.update(incident_tier=urgent["tier"], incident_type=urgent["type"], incident_severity=urgent["severity"])
        if urgent["incident_id"]:
            stats["incident_id"] = urgent["incident_id"]
    return stats


def run(params: Mapping[str, Any], check_mode: bool) -> Dict[str, Any]:
    """Action plugin and module entry point: pure, so check mode computes the same."""
    result = triage(params)
    result["stats"] = awx_stats(result, params.get("incident_id_base"), check_mode)
    return result


def argument_spec() -> Dict[str, Any]:
    return {
        "tiers": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "name": {"type": "str", "required": True},
                "members": {"type": "list", "elements": "str", "default": []},
                "database": {"type": "str"},
            },
        },
        "databases": {"type": "dict", "default": {}},
        "health": {"type": "dict", "required": True},
        "pgbouncers": {"type": "dict", "default": {}},
        "posthog": {"type": "dict"},
        "admin_panel": {"type": "dict"},
        "allowed_client_cidrs": {"type": "list", "elements": "str", "default": []},
        "expected_superusers": {"type": "list", "elements": "str", "default": list(DEFAULT_EXPECTED_SUPERUSERS)},
        "policy": {"type": "dict"},
        "playbooks": {"type": "dict", "default": {}},
        "incident_id_base": {"type": "str"},
        "raise_severity_on_critical": {"type": "bool", "default": True},
        "sliced": {"type": "bool", "default": False},
        "tier_members": {"type": "dict", "default": {}},
    }
