# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Index rules of the performance runbook: what to rebuild, drop, create or only report.

Only three things ever change an index: an invalid index is rebuilt (REINDEX INDEX CONCURRENTLY),
the _ccnew/_ccold leftovers of an earlier failed concurrent rebuild are dropped, and an index the
inventory approved (`performance_approved_indexes`) is created. Duplicate, unused and missing
indexes are reported only. An approved index is "present" when an index of the same *definition*
exists: the server renders the definition (pg_get_indexdef) of the approved index built on an
empty copy of the table, and it is compared with the definitions of the table's indexes, name
left out.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence

from ansible_collections.penguinmails.dbops.plugins.module_utils.postgres import quote_ident

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - reported by ensure_psycopg2
    sql = None

INDEX_METHODS = ("btree", "hash", "gist", "spgist", "gin", "brin")
LEFTOVER_SUFFIX = re.compile(r"_cc(new|old)[0-9]*$")
MAX_IDENTIFIER_BYTES = 63

INDEXES_SQL = """SELECT n.nspname AS schema, t.relname AS table, c.relname AS name,
       i.indisvalid AS valid, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       pg_get_indexdef(c.oid) AS definition, coalesce(s.idx_scan, 0) AS idx_scan,
       pg_relation_size(c.oid) AS size_bytes,
       EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = c.oid) AS backs_constraint
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = c.oid
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND n.nspname NOT LIKE 'pg\\_temp%%'
ORDER BY n.nspname, t.relname, c.relname"""


def definition_key(definition: str) -> str:
    """What makes two indexes the same: UNIQUE or not, and everything from USING on (name and table left out)."""
    unique = definition.startswith("CREATE UNIQUE INDEX")
    _before, _sep, shape = definition.partition(" USING ")
    return ("UNIQUE " if unique else "") + shape.strip()


def approved_problems(spec: Dict[str, Any]) -> List[str]:
    """What is wrong with one entry of performance_approved_indexes, before any server is asked."""
    problems = []
    if not str(spec.get("table") or "").strip():
        problems.append("table is required")
    columns, expression = spec.get("columns") or [], str(spec.get("expression") or "").strip()
    if bool(columns) == bool(expression):
        problems.append("give exactly one of columns (a list of column names) or expression")
    if spec.get("method", "btree") not in INDEX_METHODS:
        problems.append("method must be one of %s (got %r)" % (", ".join(INDEX_METHODS), spec.get("method")))
    for part in ("expression", "predicate"):
        if ";" in str(spec.get(part) or ""):
            problems.append("%s must be one SQL expression, without ';'" % part)
        elif str(spec.get(part) or "").strip():
            problem = single_expression_problem(str(spec[part]))
            if problem:
                problems.append("%s %s" % (part, problem))
    name = spec.get("name")
    if name is not None and not (0 < len(str(name).encode()) <= MAX_IDENTIFIER_BYTES):
        problems.append("name must be 1 to %d bytes" % MAX_IDENTIFIER_BYTES)
    return problems


WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
SUBQUERY_WORDS = ("SELECT", "VALUES", "TABLE")  # reserved: never an unquoted name


def quoted_end(text: str, start: int) -> int:
    """Index just past the quoted string or identifier opening at text[start] (' or "); -1 when it never ends.

    A doubled quote stands for itself; an E'...' string also takes backslash escapes.
    """
    quote = text[start]
    prefix = text[start - 1 : start] if start else ""
    before = text[start - 2 : start - 1] if start > 1 else ""
    backslash = quote == "'" and prefix in ("e", "E") and not (before.isalnum() or before == "_")
    position = start + 1
    while position < len(text):
        char = text[position]
        if backslash and char == "\\":
            position += 2
            continue
        if char == quote:
            if text[position + 1 : position + 2] == quote:
                position += 2
                continue
            return position + 1
        position += 1
    return -1


def single_expression_problem(text: str) -> Optional[str]:
    """Why `text` is not one SQL expression that stays inside the parentheses it is put in, or None.

    Quoted strings and identifiers are skipped; outside them no comment, no dollar sign (dollar quoting,
    parameters), no ';', no ')' that closes more than the text opened, no ',' outside parentheses
    (a list, not one expression), no subquery (the reserved words SELECT, VALUES, TABLE), and every '('
    closed. The server then parses what passes.
    """
    depth, position = 0, 0
    if not text.strip():
        return "is empty"
    while position < len(text):
        char = text[position]
        if char in "'\"":
            position = quoted_end(text, position)
            if position < 0:
                return "has a quoted string or identifier that never ends"
            continue
        if text.startswith("--", position) or text.startswith("/*", position):
            return "may not contain a comment"
        if char == "$":
            return "may not contain '$' (dollar quoting or parameters)"
        if char.isalpha() or char == "_":
            word = WORD.match(text, position).group(0)
            if word.upper() in SUBQUERY_WORDS:
                return "may not contain a subquery (%s)" % word
            position += len(word)
            continue
        if char == ";":
            return "must be one SQL expression, without ';'"
        if char == ",":
            if depth == 0:
                return "is a list, not one expression (',' outside parentheses)"
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return "closes a parenthesis it did not open: not one expression"
        position += 1
    return "leaves a parenthesis open" if depth else None


JOIN_NODES = ("Nested Loop", "Hash Join", "Merge Join", "Function Scan", "Values Scan", "Subquery Scan", "CTE Scan")


def plan_nodes(plan: Any) -> List[Dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan."""
    if isinstance(plan, list):
        return [node for item in plan for node in plan_nodes(item)]
    if not isinstance(plan, dict):
        return []
    nodes = [plan] if "Node Type" in plan else []
    return nodes + [node for value in plan.values() for node in plan_nodes(value)]


def plan_has_subquery(plan: Any) -> bool:
    """Whether an EXPLAIN (FORMAT JSON) plan reads more than its one table (a subquery, kept as a SubPlan
    or InitPlan or pulled up into a join): no index may use one."""
    nodes = plan_nodes(plan)
    return (
        sum(1 for node in nodes if "Relation Name" in node) > 1
        or any(node.get("Parent Relationship") in ("SubPlan", "InitPlan") or "Subplan Name" in node for node in nodes)
        or any(node.get("Node Type") in JOIN_NODES for node in nodes)
    )


def parse_probe_statement(spec: Dict[str, Any], schema: str, table: str) -> Any:
    """EXPLAIN of SELECT <keys> FROM schema.table WHERE <predicate> LIMIT 0: the server parses the approved
    index's columns, expression and predicate against the table, and builds nothing."""
    if spec.get("columns"):
        keys = sql.SQL(", ").join(quote_ident(str(column)) for column in spec["columns"])
    else:
        keys = sql.SQL("(" + str(spec["expression"]).strip() + ")")
    predicate = str(spec.get("predicate") or "").strip()
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT {keys} FROM {schema}.{table} WHERE {predicate} LIMIT 0").format(
        keys=keys,
        schema=quote_ident(schema),
        table=quote_ident(table),
        predicate=sql.SQL("(" + predicate + ")" if predicate else "true"),
    )


def index_name(spec: Dict[str, Any]) -> str:
    """The approved index's name: the one given, else <table>_<columns>_idx within 63 bytes."""
    if spec.get("name"):
        return str(spec["name"])
    parts = [str(spec["table"])] + [str(column) for column in spec.get("columns") or ["expr"]] + ["idx"]
    return "_".join(parts).encode()[:MAX_IDENTIFIER_BYTES].decode(errors="ignore")


def create_index_statement(spec: Dict[str, Any], name: str, schema: str, table: str, concurrently: bool) -> Any:
    """CREATE [UNIQUE] INDEX [CONCURRENTLY] name ON schema.table USING method (...) [WHERE ...], identifiers quoted.

    The expression and predicate are SQL the inventory approved; they are checked for a single
    expression (no ';') and parsed by the server on an empty copy of the table before any use.
    """
    if spec.get("columns"):
        keys = sql.SQL(", ").join(quote_ident(str(column)) for column in spec["columns"])
    else:
        keys = sql.SQL("(" + str(spec["expression"]).strip() + ")")
    statement = sql.SQL("CREATE {unique}INDEX {concurrently}{name} ON {schema}.{table} USING {method} ({keys})").format(
        unique=sql.SQL("UNIQUE " if spec.get("unique") else ""),
        concurrently=sql.SQL("CONCURRENTLY " if concurrently else ""),
        name=quote_ident(name),
        schema=quote_ident(schema),
        table=quote_ident(table),
        method=sql.SQL(spec.get("method") or "btree"),
        keys=keys,
    )
    if str(spec.get("predicate") or "").strip():
        statement = sql.Composed([statement, sql.SQL(" WHERE (" + str(spec["predicate"]).strip() + ")")])
    return statement


def reindex_statement(schema: str, name: str) -> Any:
    return sql.SQL("REINDEX INDEX CONCURRENTLY {}.{}").format(quote_ident(schema), quote_ident(name))


def drop_statement(schema: str, name: str) -> Any:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(quote_ident(schema), quote_ident(name))


def analyze_statement(schema: str, table: str) -> Any:
    return sql.SQL("ANALYZE {}.{}").format(quote_ident(schema), quote_ident(table))


def is_leftover(index: Dict[str, Any]) -> bool:
    """An invalid index named like the transient copy of REINDEX CONCURRENTLY (<name>_ccnew, <name>_ccold)."""
    return not index["valid"] and bool(LEFTOVER_SUFFIX.search(index["name"]))


def invalid_index_actions(indexes: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Drop every leftover first, then rebuild every other invalid index."""
    leftovers = [index for index in indexes if is_leftover(index)]
    broken = [index for index in indexes if not index["valid"] and not is_leftover(index)]
    return [action("drop_leftover", index) for index in leftovers] + [action("reindex", index) for index in broken]


def action(kind: str, index: Dict[str, Any]) -> Dict[str, Any]:
    return {"action": kind, "schema": index["schema"], "table": index["table"], "name": index["name"]}


def approved_index_action(name: str, key: str, table_indexes: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """present (same definition, valid), reindex (same definition, invalid), name_taken (refused) or create."""
    same = [index for index in table_indexes if definition_key(index["definition"]) == key]
    valid = [index for index in same if index["valid"]]
    if valid:
        return {"action": "present", "name": valid[0]["name"]}
    if same:
        return {"action": "reindex", "name": same[0]["name"]}
    if any(index["name"] == name for index in table_indexes):
        return {
            "action": "name_taken",
            "name": name,
            "reason": "an index named %s exists with another definition" % name,
        }
    return {"action": "create", "name": name}


def duplicate_indexes(indexes: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Groups of valid indexes of one table with the same definition: reported, never dropped."""
    groups: Dict[tuple, List[str]] = {}
    for index in indexes:
        if index["valid"]:
            groups.setdefault((index["schema"], index["table"], definition_key(index["definition"])), []).append(
                index["name"]
            )
    return [
        {"schema": schema, "table": table, "definition": key, "indexes": sorted(names)}
        for (schema, table, key), names in sorted(groups.items())
        if len(names) > 1
    ]


def unused_indexes(indexes: Sequence[Dict[str, Any]], min_size_bytes: int) -> List[Dict[str, Any]]:
    """Valid indexes never scanned since statistics were reset, not backing a constraint: reported, never dropped."""
    return [
        {
            "schema": index["schema"],
            "table": index["table"],
            "name": index["name"],
            "size_bytes": index.get("size_bytes"),
        }
        for index in indexes
        if index["valid"]
        and not index.get("idx_scan")
        and not index.get("backs_constraint")
        and (index.get("size_bytes") or 0) >= min_size_bytes
    ]


def still_invalid(names: Sequence[str], indexes_after: Sequence[Dict[str, Any]]) -> List[str]:
    """The rebuilt or created indexes that are not valid on the re-check."""
    valid = {index["name"] for index in indexes_after if index["valid"]}
    return sorted(name for name in names if name not in valid)


def split_table(name: str, default_schema: Optional[str] = "public") -> tuple:
    """(schema, table) of 'table' or 'schema.table' (quoted names are not parsed; give schema separately)."""
    schema, _sep, table = str(name).rpartition(".")
    return (schema or default_schema, table)
