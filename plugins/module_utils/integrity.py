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


def row_recovery(findings: Sequence[Mapping[str, Any]]) -> Tuple[List[Dict[str, Any]], List[str], List[str]]:
    """What the row checks' findings ask for: (quarantine targets, tables to restore, lines for a person).

    Each table's rows are quarantined by its key; the table is restored and diffed, and for orphans the
    parent table too (its rows went missing). Rows without a key, or keyed differently by two checks,
    are for a person.
    """
    quarantine: Dict[str, Dict[str, Any]] = {}
    restore = set()
    for_a_person = []
    for finding in findings:
        if finding["check"] not in ROW_CHECKS:
            continue
        restore.add(finding["table"])
        if finding.get("references"):
            restore.add(finding["references"])
        if not finding.get("keys"):
            for_a_person.append("%s: %s (no key to quarantine by)" % (finding["table"], finding["problem"]))
            continue
        entry = quarantine.setdefault(finding["table"], {"table": finding["table"], "key": finding["key"], "keys": []})
        if entry["key"] != finding["key"]:
            for_a_person.append("%s: rows of %s keyed differently" % (finding["table"], finding["problem"]))
            continue
        for key in finding["keys"]:
            if key not in entry["keys"]:
                entry["keys"].append(key)
    return [quarantine[table] for table in sorted(quarantine)], sorted(restore), for_a_person


def recovery_plan(findings: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """What the runbook does about one server's findings.

    reindex: corrupt B-tree indexes (rebuilt concurrently, then re-checked); quarantine: per table, the
    keys of the rows the row checks named (copied aside, writes revoked); restore: tables with heap
    corruption or bad rows, and the parents of orphaned rows (restored at the target time into a
    throw-away instance and diffed);
    for_a_person: what the runbook cannot repair itself (a checksum failure outside a table, rows
    without a key, heap corruption).
    """
    quarantine, restore, for_a_person = row_recovery(findings)
    for_a_person.extend(f["problem"] for f in findings if f["check"] == CHECKSUMS)
    heap = sorted((f["table"], f.get("blocks", [])) for f in findings if f["check"] == VERIFY_HEAPAM)
    for_a_person.extend(
        "%s: heap corruption in blocks %s; restore it from a backup" % (table, blocks) for table, blocks in heap
    )
    return {
        "reindex": sorted({f["relation"] for f in findings if f["check"] in INDEX_CHECKS}),
        "quarantine": quarantine,
        "restore": sorted(set(restore) | {entry[0] for entry in heap}),
        "for_a_person": for_a_person,
        "clean": not findings,
    }


# How one copy's damaged files are recovered, given which copies are damaged (recovery_across_copies).
REINDEX_PRIMARY = "reindex_on_primary"
RECLONE_STANDBY = "reclone_standby"
SWITCH_OVER = "switch_over_to_clean_copy"
RESTORE_FROM_BACKUP = "restore_from_backup"
FIND_THE_PAGE = "find_the_damaged_page"
_DAMAGE_KINDS = {BT_INDEX_CHECK: "index", BT_PARENT_CHECK: "index", VERIFY_HEAPAM: "heap", CHECKSUMS: "checksums"}


def copy_damage(findings: Sequence[Mapping[str, Any]]) -> Dict[Tuple[str, str], Mapping[str, Any]]:
    """One copy's damaged files: (index|heap|checksums, relation) -> its finding.

    Row checks are left out: bad rows are data, the same on every copy by replication. A checksum
    failure on a copy that also has a damaged index or heap page is that page's, not damage of its own.
    """
    damage = {(_DAMAGE_KINDS[f["check"]], f["relation"]): f for f in findings if f["check"] in _DAMAGE_KINDS}
    if any(key[0] != "checksums" for key in damage):
        damage.pop(("checksums", ""), None)
    return damage


def _blocks(finding: Mapping[str, Any]) -> str:
    return " (blocks %s)" % finding["blocks"] if finding.get("blocks") else ""


def damage_path(
    kind: str, relation: str, primary: str, damaged: Mapping[str, Mapping[str, Any]], clean: Sequence[str]
) -> Dict[str, Any]:
    """How to recover one relation's damaged files, from which copies have them (`damaged`: copy ->
    finding) and which checked copies are clean.

    A B-tree index is rebuilt on the primary whichever copy is damaged: REINDEX writes a new file that
    every standby replays. A checksum failure that no check in scope explains names no page (the
    counter is database-wide and keeps failures of pages since repaired or dropped): the page is to be
    found first, with the checks over the whole database. A heap page cannot be rebuilt from anything
    the server has: damaged only on standbys, they are re-cloned from the primary and the
    primary is left alone; damaged on the primary while a standby holds a clean copy, that standby is
    the better source (switch over to it, then re-clone the old primary), since a restore from a backup
    loses the writes made after it; damaged on every copy checked, only a backup is left.
    """
    name = relation or "the database"
    on_primary = primary in damaged
    standbys = sorted(copy for copy in damaged if copy != primary)
    clean_standbys = [copy for copy in clean if copy != primary]
    if kind == "index":
        path = REINDEX_PRIMARY
        action = "rebuild %s on %s (REINDEX CONCURRENTLY; the standbys replay the new index)" % (name, primary)
    elif kind == "checksums":
        path = FIND_THE_PAGE
        action = "%s: %s, and no check in scope found the page: check the whole database (no integrity_scope)" % (
            ", ".join(sorted(damaged)),
            "; ".join(damaged[copy]["problem"] for copy in sorted(damaged)),
        )
    elif not on_primary:
        path = RECLONE_STANDBY
        action = "re-clone %s from %s: %s's copy of %s is damaged%s, the primary's is clean" % (
            ", ".join(standbys),
            primary,
            standbys[0],
            name,
            _blocks(damaged[standbys[0]]),
        )
    elif clean_standbys:
        path = SWITCH_OVER
        action = (
            "%s's copy of %s is damaged%s and %s's is clean: switch over to %s (a planned switchover), then "
            "re-clone %s; a restore from a backup would lose the writes made since that backup"
            % (primary, name, _blocks(damaged[primary]), clean_standbys[0], clean_standbys[0], primary)
        )
    else:
        path = RESTORE_FROM_BACKUP
        action = "%s: damaged on every copy checked (%s)%s; restore it from a backup" % (
            name,
            ", ".join(sorted(damaged)),
            _blocks(damaged[primary]),
        )
    return {
        "kind": kind,
        "relation": relation,
        "table": damaged[primary if on_primary else standbys[0]].get("table", ""),
        "damaged_on": sorted(damaged),
        "clean_on": sorted(clean),
        "path": path,
        "action": action,
    }


def recovery_across_copies(
    primary: str, primary_scan: Mapping[str, Any], standby_scans: Mapping[str, Mapping[str, Any]]
) -> Dict[str, Any]:
    """The recovery plan when the tier's standbys were checked too (pg_integrity on each).

    `standby_scans`: standby -> its pg_integrity result, or {failed: true, msg} when it could not be
    checked (a copy not checked is never taken for clean). The primary's plan, changed where a copy
    decides the path (damage_path): indexes damaged only on a standby are rebuilt on the primary too;
    a table whose heap a standby holds clean is not restored from a backup (unless its rows are bad,
    which every copy shares); a damaged heap page is for a person, with the path to take.
    """
    findings = list(primary_scan.get("findings") or [])
    scans = {primary: findings}
    unchecked = []
    for standby in sorted(standby_scans):
        scan = standby_scans[standby]
        if scan.get("failed") or "findings" not in scan:
            unchecked.append({"member": standby, "reason": str(scan.get("msg") or "not checked")})
        elif not scan.get("standby", True):
            unchecked.append({"member": standby, "reason": "not a standby (it is not in recovery)"})
        else:
            scans[standby] = list(scan["findings"])
    damage_by_copy = {copy: copy_damage(found) for copy, found in scans.items()}
    relations = sorted({key for damage in damage_by_copy.values() for key in damage})
    damage = []
    for kind, relation in relations:
        damaged = {copy: found[(kind, relation)] for copy, found in damage_by_copy.items() if (kind, relation) in found}
        clean = [copy for copy in scans if copy not in damaged]
        damage.append(damage_path(kind, relation, primary, damaged, clean))

    quarantine, row_restore, for_a_person = row_recovery(findings)
    heap_restore = {entry["table"] for entry in damage if entry["path"] == RESTORE_FROM_BACKUP and entry["table"]}
    copies = {"checked": sorted(scans), "unchecked": unchecked, "damage": damage}
    for_a_person.extend(copies_advice({"copies": copies}))
    for_a_person.extend("%s could not be checked: %s" % (item["member"], item["reason"]) for item in unchecked)
    return {
        "reindex": sorted({entry["relation"] for entry in damage if entry["path"] == REINDEX_PRIMARY}),
        "quarantine": quarantine,
        "restore": sorted(set(row_restore) | heap_restore),
        "for_a_person": for_a_person,
        "clean": not findings and not damage and not unchecked,
        "copies": copies,
    }


def copies_advice(plan: Mapping[str, Any]) -> List[str]:
    """The paths a person takes for the damaged files of a plan across copies (the index rebuilds are the run's)."""
    damage = (plan.get("copies") or {}).get("damage") or []
    return [entry["action"] for entry in damage if entry["path"] != REINDEX_PRIMARY]


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


def verification(
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    standbys_before: Optional[Mapping[str, Mapping[str, Any]]] = None,
    standbys_after: Optional[Mapping[str, Mapping[str, Any]]] = None,
    advice: Sequence[str] = (),
) -> Dict[str, Any]:
    """pg_integrity before and after the run -> verified (nothing found any more, everything reached)
    and what remains for a person.

    With the standbys checked too (`standbys_*`: standby -> pg_integrity result, or {failed, msg}),
    damaged files left on a standby remain, and so does a standby that could not be checked again; their
    rows are the primary's (copy_damage). `advice` (the paths of recovery_across_copies) goes with
    what remains.
    """
    remaining = [
        "%s %s: %s" % (f["check"], f["relation"] or "(database)", f["problem"]) for f in after.get("findings") or []
    ]
    remaining.extend("not reached within the budget: %s" % item for item in after.get("not_reached") or [])
    for standby, scan in sorted((standbys_after or {}).items()):
        if scan.get("failed") or "findings" not in scan:
            remaining.append("%s could not be checked again: %s" % (standby, scan.get("msg") or "not checked"))
            continue
        remaining.extend(
            "on %s: %s %s: %s" % (standby, f["check"], f["relation"] or "(database)", f["problem"])
            for f in copy_damage(scan["findings"]).values()
        )
        not_reached = scan.get("not_reached") or []
        remaining.extend("on %s: not reached within the budget: %s" % (standby, item) for item in not_reached)
    found = len(before.get("findings") or [])
    on_standbys = sum(len(copy_damage(scan.get("findings") or [])) for scan in (standbys_before or {}).values())
    found_text = "%d finding(s) before%s" % (found, " (and %d on standbys)" % on_standbys if on_standbys else "")
    reason = "%s, %d remain" % (found_text, len(remaining)) if remaining else "%s, the checks pass now" % found_text
    verdict = {"verified": not remaining, "reason": reason, "remaining": remaining}
    if remaining and advice:
        verdict["advice"] = list(advice)
    return verdict


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
        advice = "; what to do: %s" % "; ".join(verdict["advice"]) if verdict.get("advice") else ""
        return {
            "outcome": "escalated",
            "note": "for a person%s: %s%s"
            % (kept, "; ".join(verdict.get("remaining") or [verdict.get("reason", "")]), advice),
        }
    reason = "; %s" % verdict["reason"] if verdict else ""
    if changed:
        return {"outcome": "resolved", "note": "repaired" + reason}
    return {"outcome": "no_action", "note": "nothing found" + reason}
