# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The data integrity runbook's rules: pure functions, no I/O (unit tables in tests/unit).

pg_integrity (integrity_run.py) reads the catalog and runs the checks; these functions decide which
relations are in scope, which checks run where, what a failed check means (block, rows, keys), what
the recovery plan is (indexes to rebuild, rows to quarantine, tables to restore) and the incident's
outcome. pg_quarantine builds its statements from quarantine_table_name / undo rules here too.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# Checks in the order a scan runs them: the cheap database-wide one first, then per relation.
CHECKSUMS = "checksum_failures"
BT_INDEX_CHECK = "bt_index_check"
BT_PARENT_CHECK = "bt_index_parent_check"
VERIFY_HEAPAM = "verify_heapam"
NOT_VALID = "not_valid_constraint"
FK_ORPHANS = "fk_orphans"
INVARIANT = "invariant"
INDEX_CHECKS = (BT_INDEX_CHECK, BT_PARENT_CHECK)
ROW_CHECKS = (NOT_VALID, FK_ORPHANS, INVARIANT)

QUARANTINE_SCHEMA = "quarantine"
QUARANTINE_LOG = "dbops_quarantine_log"
# PostgreSQL truncates identifiers to 63 bytes; quarantine table names stay below.
MAX_IDENTIFIER = 63
WRITE_PRIVILEGES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
ALL_PRIVILEGES = ("SELECT", *WRITE_PRIVILEGES, "REFERENCES", "TRIGGER")

_BLOCK_RE = re.compile(r"\bblock (\d+)\b")
_SELECT_START_RE = re.compile(r"^\s*(\(\s*)*(select|with|values|table)\b", re.IGNORECASE)


def split_name(name: str, default_schema: str = "public") -> Tuple[str, str]:
    """'schema.table' or 'table' -> (schema, table). No quoting rules: names with dots are not supported."""
    parts = str(name).split(".")
    if len(parts) == 1:
        return default_schema, parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise ValueError("%r is not a table name of the form schema.table" % name)


def qualified(schema: str, name: str) -> str:
    return "%s.%s" % (schema, name)


def invariant_problems(invariants: Sequence[Mapping[str, Any]]) -> List[str]:
    """What is wrong with the inventory's invariants before any server is asked (one line each).

    Each needs a name, the table it guards (schema.table) and one query; the query may not contain ';'
    (one statement only) and must start like a query (SELECT, WITH, VALUES, TABLE). The server then
    parses it and checks that it writes nothing (integrity_run.checked_invariants).
    """
    problems = []
    names = set()
    for position, spec in enumerate(invariants):
        where = "invariant %d (%s)" % (position, spec.get("name") or "unnamed")
        if not str(spec.get("name") or "").strip():
            problems.append("%s: needs a name" % where)
        elif spec["name"] in names:
            problems.append("%s: the name is used twice" % where)
        names.add(spec.get("name"))
        if not str(spec.get("table") or "").strip():
            problems.append("%s: needs the table it guards" % where)
        else:
            try:
                split_name(spec["table"])
            except ValueError as error:
                problems.append("%s: %s" % (where, error))
        query = str(spec.get("query") or "").strip().rstrip(";").strip()
        if not query:
            problems.append("%s: needs a query" % where)
        elif ";" in query:
            problems.append("%s: the query must be one statement, without ';'" % where)
        elif not _SELECT_START_RE.match(query):
            problems.append("%s: the query must be a SELECT that returns the violating rows" % where)
    return problems


def plan_modifies(plan: Any) -> bool:
    """True when an EXPLAIN (FORMAT JSON) plan tree has a node that writes (ModifyTable, LockRows)."""
    if isinstance(plan, Mapping):
        if plan.get("Node Type") in ("ModifyTable", "LockRows"):
            return True
        return any(plan_modifies(value) for value in plan.values())
    if isinstance(plan, (list, tuple)):
        return any(plan_modifies(item) for item in plan)
    return False


def scope_problems(scope: Mapping[str, Any]) -> List[str]:
    """integrity_scope's shape: lists of names, changed_since an ISO time or empty."""
    problems = []
    for key in ("schemas", "tables"):
        value = scope.get(key) or []
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item for item in value):
            problems.append("integrity_scope.%s must be a list of names" % key)
    for table in scope.get("tables") or []:
        if isinstance(table, str):
            try:
                split_name(table)
            except ValueError as error:
                problems.append("integrity_scope.tables: %s" % error)
    unknown = sorted(set(scope) - {"schemas", "tables", "changed_since"})
    if unknown:
        problems.append("integrity_scope has unknown keys: %s" % ", ".join(unknown))
    return problems


def select_tables(
    tables: Sequence[Mapping[str, Any]], scope: Mapping[str, Any], changed: Optional[Iterable[str]] = None
) -> Tuple[List[Dict[str, Any]], List[str]]:
    """(the catalog's tables in scope, the scope's tables the catalog does not have).

    `tables` come from the catalog (schema, name, ...); `changed` are the qualified names of tables
    changed since scope.changed_since (None: no such filter). Schemas and tables narrow together.
    """
    wanted_schemas = set(scope.get("schemas") or [])
    wanted_tables = {qualified(*split_name(name)) for name in scope.get("tables") or []}
    known = {qualified(table["schema"], table["name"]) for table in tables}
    selected = []
    for table in tables:
        name = qualified(table["schema"], table["name"])
        if wanted_schemas and table["schema"] not in wanted_schemas:
            continue
        if wanted_tables and name not in wanted_tables:
            continue
        if changed is not None and name not in set(changed):
            continue
        selected.append(dict(table))
    return selected, sorted(wanted_tables - known)


def check_plan(
    tables: Sequence[Mapping[str, Any]],
    indexes: Sequence[Mapping[str, Any]],
    constraints: Sequence[Mapping[str, Any]],
    invariants: Sequence[Mapping[str, Any]],
    options: Mapping[str, Any],
    standby: bool,
) -> List[Dict[str, Any]]:
    """The checks to run, in order, each {check, relation, ...}.

    B-tree indexes of tables in scope: bt_index_check (heapallindexed when asked); bt_index_parent_check
    only when allowed (it blocks writes to the table while it runs) and never on a standby, where it
    cannot run. Invalid indexes cannot be checked and are skipped (pg_indexes rebuilds them).
    verify_heapam on each table; NOT VALID constraints and foreign keys of tables in scope; the
    invariants whose table is in scope.
    """
    names = {qualified(table["schema"], table["name"]) for table in tables}
    checks: List[Dict[str, Any]] = [{"check": CHECKSUMS, "relation": ""}]
    parent = bool(options.get("parent_check")) and not standby
    for index in indexes:
        if index.get("method", "btree") != "btree" or not index.get("valid", True):
            continue
        if qualified(index["schema"], index["table"]) not in names:
            continue
        relation = qualified(index["schema"], index["name"])
        checks.append(
            {
                "check": BT_PARENT_CHECK if parent else BT_INDEX_CHECK,
                "relation": relation,
                "table": qualified(index["schema"], index["table"]),
                "heapallindexed": bool(options.get("heapallindexed")),
            }
        )
    if options.get("heap", True):
        checks.extend({"check": VERIFY_HEAPAM, "relation": name, "table": name} for name in sorted(names))
    for constraint in constraints:
        table = qualified(constraint["schema"], constraint["table"])
        if table not in names:
            continue
        if constraint["type"] == "f":
            checks.append(dict(constraint, check=FK_ORPHANS, relation=table, table=table))
        elif not constraint.get("validated", True):
            checks.append(dict(constraint, check=NOT_VALID, relation=table, table=table))
    for spec in invariants:
        table = qualified(*split_name(spec["table"]))
        if table in names:
            checks.append(dict(spec, check=INVARIANT, relation=table, table=table))
    return checks


def block_of(message: str) -> Optional[int]:
    """The block number a server error names ('invalid page in block 3 of relation ...'), or None."""
    match = _BLOCK_RE.search(message or "")
    return int(match.group(1)) if match else None


def heapam_finding(check: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """verify_heapam's rows (blkno, offnum, attnum, msg) -> one finding with its blocks, or None when clean."""
    if not rows:
        return None
    return {
        "check": VERIFY_HEAPAM,
        "relation": check["relation"],
        "table": check["table"],
        "problem": "heap corruption: %s" % rows[0].get("msg"),
        "blocks": sorted({int(row["blkno"]) for row in rows if row.get("blkno") is not None}),
        "evidence": [dict(row) for row in rows[:20]],
    }


def error_finding(check: Mapping[str, Any], message: str) -> Dict[str, Any]:
    """A check the server refused with an error (a page that fails its checksum, amcheck's
    'index ... lacks a main relation fork' ...) -> a finding naming the block when the error does."""
    block = block_of(message)
    return {
        "check": check["check"],
        "relation": check["relation"],
        "table": check.get("table", ""),
        "problem": message,
        "blocks": [] if block is None else [block],
        "evidence": [],
    }


def row_finding(
    check: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], key: Sequence[str], limit: int
) -> Optional[Dict[str, Any]]:
    """Rows a row check returned -> a finding whose `keys` are the rows' key values (the table's primary
    key, when the rows carry it), or None when there are none."""
    if not rows:
        return None
    carries_key = bool(key) and all(column in rows[0] for column in key)
    what = {
        FK_ORPHANS: "rows referencing missing %s rows (%s)" % (check.get("references", "?"), check.get("name", "")),
        NOT_VALID: "rows violating NOT VALID constraint %s" % check.get("name", ""),
        INVARIANT: "rows breaking invariant %s" % check.get("name", ""),
    }[check["check"]]
    return {
        "check": check["check"],
        "relation": check["relation"],
        "table": check["table"],
        "name": check.get("name", ""),
        "problem": "%d %s" % (len(rows), what) if len(rows) < limit else "at least %d %s" % (len(rows), what),
        "key": list(key) if carries_key else [],
        "keys": [[row[column] for column in key] for row in rows] if carries_key else [],
        "evidence": [dict(row) for row in rows[:20]],
        **({"references": check["references"]} if check.get("references") else {}),
    }


def checksum_finding(database: str, row: Mapping[str, Any], baseline: int = 0) -> Optional[Dict[str, Any]]:
    """pg_stat_database's checksum counters for the database -> a finding when there are failures."""
    failures = int(row.get("checksum_failures") or 0)
    if failures <= int(baseline or 0):
        return None
    return {
        "check": CHECKSUMS,
        "relation": "",
        "table": "",
        "problem": "%d data checksum failure(s) in database %s, last at %s"
        % (failures, database, row.get("checksum_last_failure")),
        "blocks": [],
        "evidence": [dict(row)],
    }


def budget_left(elapsed_s: float, budget_s: float) -> bool:
    """Another check may start while the scan is within its budget (0: no budget)."""
    return budget_s <= 0 or elapsed_s < budget_s


def recovery_plan(findings: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """What the runbook does about the findings.

    reindex: corrupt B-tree indexes (rebuilt concurrently, then re-checked); quarantine: per table, the
    keys of the rows the row checks named (copied aside, writes revoked); restore: tables with heap
    corruption or bad rows, and the parents of orphaned rows (restored at the target time into a
    throw-away instance and diffed);
    for_a_person: what the runbook cannot repair itself (a checksum failure outside a table, rows
    without a key).
    """
    reindex = sorted({f["relation"] for f in findings if f["check"] in INDEX_CHECKS})
    quarantine: Dict[str, Dict[str, Any]] = {}
    restore = set()
    for_a_person = []
    for finding in findings:
        if finding["check"] in ROW_CHECKS:
            restore.add(finding["table"])
            # Orphans mean parents went missing: the parent table is restored and diffed too.
            if finding.get("references"):
                restore.add(finding["references"])
            if not finding.get("keys"):
                for_a_person.append("%s: %s (no key to quarantine by)" % (finding["table"], finding["problem"]))
                continue
            entry = quarantine.setdefault(
                finding["table"], {"table": finding["table"], "key": finding["key"], "keys": []}
            )
            if entry["key"] != finding["key"]:
                for_a_person.append("%s: rows of %s keyed differently" % (finding["table"], finding["problem"]))
                continue
            for key in finding["keys"]:
                if key not in entry["keys"]:
                    entry["keys"].append(key)
        elif finding["check"] == VERIFY_HEAPAM:
            restore.add(finding["table"])
        elif finding["check"] == CHECKSUMS:
            for_a_person.append(finding["problem"])
    heap = sorted((f["table"], f.get("blocks", [])) for f in findings if f["check"] == VERIFY_HEAPAM)
    for_a_person.extend(
        "%s: heap corruption in blocks %s; restore it from a backup" % (table, blocks) for table, blocks in heap
    )
    return {
        "reindex": reindex,
        "quarantine": [quarantine[table] for table in sorted(quarantine)],
        "restore": sorted(restore),
        "for_a_person": for_a_person,
        "clean": not findings,
    }


def quarantine_table_name(table: str, incident_id: str) -> str:
    """quarantine.<schema>_<table>_<incident>: one copy table per table and incident, within 63 bytes."""
    schema, name = split_name(table)
    slug = re.sub(r"[^a-z0-9_]+", "_", str(incident_id).lower()).strip("_") or "incident"
    base = "%s_%s" % (schema, name)
    return ("%s__%s" % (base[: MAX_IDENTIFIER - len(slug) - 2], slug))[:MAX_IDENTIFIER]


def quarantine_problems(targets: Sequence[Mapping[str, Any]], incident_id: str, privileges: str) -> List[str]:
    problems = []
    if not str(incident_id or "").strip():
        problems.append("incident_id is required: the quarantine is stamped with it and lifted by it")
    if privileges not in ("write", "all"):
        problems.append("privileges must be write or all (got %r)" % privileges)
    for position, target in enumerate(targets):
        try:
            split_name(target.get("table") or "")
        except ValueError as error:
            problems.append("target %d: %s" % (position, error))
        key, keys = list(target.get("key") or []), list(target.get("keys") or [])
        if not key:
            problems.append("target %d (%s): needs its key columns" % (position, target.get("table")))
        if any(not isinstance(value, (list, tuple)) or len(value) != len(key) for value in keys):
            problems.append("target %d (%s): each key needs %d value(s)" % (position, target.get("table"), len(key)))
    return problems


def revocations(
    held: Mapping[str, Sequence[str]], own_roles: Iterable[str], privileges: str
) -> Tuple[Dict[str, List[str]], List[str]]:
    """({role: privileges to revoke}, roles left alone): only what each application role holds directly
    and the quarantine covers; never the run's own role(s)."""
    covered = WRITE_PRIVILEGES if privileges == "write" else ALL_PRIVILEGES
    own = set(own_roles)
    revoke, left_alone = {}, []
    for role in sorted(held):
        if role in own:
            left_alone.append(role)
            continue
        taken = [privilege for privilege in covered if privilege in held[role]]
        if taken:
            revoke[role] = taken
    return revoke, left_alone


def row_diff(
    restored: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> Dict[str, List[Dict[str, Any]]]:
    """Rows of a table as restored vs as they are: missing (only restored), changed (same key, other
    values, with both versions), extra (only current). Keys are lists of the key columns' values."""

    def keyed(rows: Sequence[Mapping[str, Any]]) -> Dict[Tuple[Any, ...], Mapping[str, Any]]:
        return {tuple(row[column] for column in key): row for row in rows}

    before, now = keyed(restored), keyed(current)
    missing = [{"key": list(k), "row": dict(before[k])} for k in sorted(set(before) - set(now), key=repr)]
    extra = [{"key": list(k), "row": dict(now[k])} for k in sorted(set(now) - set(before), key=repr)]
    changed = [
        {"key": list(k), "restored": dict(before[k]), "current": dict(now[k])}
        for k in sorted(set(before) & set(now), key=repr)
        if dict(before[k]) != dict(now[k])
    ]
    return {"missing": missing, "changed": changed, "extra": extra}


def verification(before: Mapping[str, Any], after: Mapping[str, Any]) -> Dict[str, Any]:
    """pg_integrity before and after the run -> verified (nothing found any more, everything reached)
    and what remains for a person."""
    remaining = [
        "%s %s: %s" % (f["check"], f["relation"] or "(database)", f["problem"]) for f in after.get("findings") or []
    ]
    not_reached = list(after.get("not_reached") or [])
    remaining.extend("not reached within the budget: %s" % item for item in not_reached)
    found = len(before.get("findings") or [])
    if remaining:
        reason = "%d finding(s) before, %d remain" % (found, len(remaining))
    else:
        reason = "%d finding(s) before, the checks pass now" % found
    return {"verified": not remaining, "reason": reason, "remaining": remaining}


def run_outcome(
    changed: bool, verdict: Optional[Mapping[str, Any]], failures: Sequence[str], quarantined: bool = False
) -> Dict[str, str]:
    """The incident's outcome and note: escalated when a step failed or something remains for a person
    (the quarantine stays in place), resolved when the run changed something and the checks pass,
    no_action when nothing was found."""
    if failures:
        return {"outcome": "escalated", "note": "; ".join(str(failure) for failure in failures)}
    if verdict and not verdict.get("verified"):
        kept = " (quarantine kept in place)" if quarantined else ""
        return {
            "outcome": "escalated",
            "note": "for a person%s: %s" % (kept, "; ".join(verdict.get("remaining") or [verdict.get("reason", "")])),
        }
    reason = "; %s" % verdict["reason"] if verdict else ""
    if changed:
        return {"outcome": "resolved", "note": "repaired" + reason}
    return {"outcome": "no_action", "note": "nothing found" + reason}
