# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# ruff: noqa: E402 - plugin documentation comes before the imports (ansible-test validate-modules)
from __future__ import annotations

DOCUMENTATION = r"""
name: audit
type: aggregate
short_description: Hash-chained audit trail of every task result, one file per incident
version_added: 0.1.0
description:
  - Writes one JSON line per task result - UTC timestamp, incident id, operator, playbook, play, host, task,
    module, status (ok, changed, failed, skipped, unreachable), duration, and what the module reports it
    executed (C(executed_queries), C(actions)) - plus a line when a playbook starts and one when it ends.
  - Every line carries C(seq) (its line number) and C(prev), the SHA-256 of the previous line, so an edit,
    insertion or deletion is detectable. M(penguinmails.dbops.dbops_audit_verify), C(playbooks/audit_verify.yml)
    and C(tools/audit_verify) check the chain.
  - Tasks with C(no_log) write only that they ran (host, task, module, status, duration). Passwords, tokens
    and keys are masked in what is written, and task arguments are never written.
  - By default the trail goes to the incident's own directory, C(<incident dir>/<id>/audit.jsonl), as soon as
    M(penguinmails.dbops.dbops_incident) reports the incident; lines of tasks before that are held and written
    then. A run that never names an incident writes nothing unless O(record_unattributed) is set, or
    O(audit_file) names one file for everything.
  - Each line can also be sent to syslog and/or an HTTP endpoint, for a copy that outlives the controller
    (an AWX execution environment is discarded after the job). A sink that fails is reported once and
    switched off for the rest of the run; the run goes on.
author:
  - PenguinMails Database Operations (@penguinmails)
requirements:
  - Enabled in ansible.cfg, C(callbacks_enabled = penguinmails.dbops.audit) in C([defaults]).
options:
  audit_file:
    description:
      - One file for every run's lines, instead of one per incident.
    type: path
    env:
      - name: DBOPS_AUDIT_FILE
    ini:
      - section: callback_dbops_audit
        key: audit_file
  incident_dir:
    description:
      - Where incident directories are, for runs that name their incident only through the C(incident_id),
        C(awx_job_id) or C(tower_job_id) extra variable and never open it. Relative to the working directory.
      - A run that opens its incident writes to the directory the incident module reports.
    type: str
    default: incidents
    env:
      - name: DBOPS_INCIDENT_DIR
    ini:
      - section: callback_dbops_audit
        key: incident_dir
  record_unattributed:
    description:
      - Also record runs that name no incident, in C(<incident_dir>/unattributed/audit.jsonl).
    type: bool
    default: false
    env:
      - name: DBOPS_AUDIT_RECORD_UNATTRIBUTED
    ini:
      - section: callback_dbops_audit
        key: record_unattributed
  fsync:
    description:
      - Flush every line to disk before the next task result is handled.
    type: bool
    default: true
    env:
      - name: DBOPS_AUDIT_FSYNC
    ini:
      - section: callback_dbops_audit
        key: fsync
  syslog_address:
    description:
      - Also send each line to syslog. A socket path (V(/dev/log)), V(udp://host:port) or V(tcp://host:port).
    type: str
    env:
      - name: DBOPS_AUDIT_SYSLOG_ADDRESS
    ini:
      - section: callback_dbops_audit
        key: syslog_address
  syslog_facility:
    description:
      - Syslog facility of those messages.
    type: str
    default: local0
    env:
      - name: DBOPS_AUDIT_SYSLOG_FACILITY
    ini:
      - section: callback_dbops_audit
        key: syslog_facility
  http_url:
    description:
      - Also POST each line (a JSON document) to this URL, for example a log collector's HTTP input.
    type: str
    env:
      - name: DBOPS_AUDIT_HTTP_URL
    ini:
      - section: callback_dbops_audit
        key: http_url
  http_token:
    description:
      - "Sent as C(Authorization: Bearer <token>) with O(http_url). Keep it out of files; use the environment."
    type: str
    env:
      - name: DBOPS_AUDIT_HTTP_TOKEN
  http_timeout:
    description:
      - Seconds to wait for the HTTP endpoint (and a TCP syslog server) per line.
    type: float
    default: 5
    env:
      - name: DBOPS_AUDIT_HTTP_TIMEOUT
    ini:
      - section: callback_dbops_audit
        key: http_timeout
  validate_certs:
    description:
      - Verify the TLS certificate of O(http_url).
    type: bool
    default: true
    env:
      - name: DBOPS_AUDIT_VALIDATE_CERTS
    ini:
      - section: callback_dbops_audit
        key: validate_certs
"""

import getpass
import logging
import logging.handlers
import os
import socket
import time
import uuid
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from ansible import context
from ansible.module_utils.urls import open_url
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.penguinmails.dbops.plugins.module_utils import audit, incident, redaction

INCIDENT_MODULES = ("penguinmails.dbops.dbops_incident", "penguinmails.dbops.dbops_notify")
MAX_HELD_LINES = 10000
MESSAGE_LIMIT = 500


def _result_of(result) -> Mapping[str, Any]:
    """The result dictionary (ansible-core 2.19 names it ``result``, earlier versions ``_result``)."""
    value = getattr(result, "result", None)
    return value if isinstance(value, Mapping) else result._result


def _task_of(result):
    return getattr(result, "task", None) or result._task


def _host_of(result):
    return getattr(result, "host", None) or result._host


def _executed(result: Mapping[str, Any], key: str) -> List[Any]:
    """A result's ``executed_queries`` or ``actions``, with those of every loop item."""
    collected: List[Any] = []
    for part in [result, *[item for item in result.get("results") or [] if isinstance(item, Mapping)]]:
        value = part.get(key)
        if value:
            collected.extend(value if isinstance(value, list) else [value])
    return collected


class Sink:
    """A copy of the trail outside the controller; switched off after its first failure."""

    def __init__(self, name: str, send) -> None:
        self.name = name
        self.send = send
        self.error: Optional[str] = None

    def emit(self, line: str) -> Optional[str]:
        if self.error:
            return None
        try:
            self.send(line)
        except Exception as exc:  # a broken sink must never break the run
            self.error = f"audit copy to {self.name} failed, not sending more this run: {exc}"
            return self.error
        return None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "penguinmails.dbops.audit"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None, options=None) -> None:
        super().__init__(display=display, options=options)
        self.run_id = uuid.uuid4().hex
        self.playbook = ""
        self.play = ""
        self.incident_id: Optional[str] = None
        self.operator = ""
        self.target: Optional[str] = None
        self.held: List[Dict[str, Any]] = []
        self.dropped = 0
        self.started: Dict[Any, float] = {}
        self.run_started = time.monotonic()
        self.sinks: List[Sink] = []
        self.extra_vars: Mapping[str, Any] = {}
        self.announced = False

    # --- configuration --------------------------------------------------------------------

    def set_options(self, task_keys=None, var_options=None, direct=None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.sinks = [sink for sink in (self._syslog_sink(), self._http_sink()) if sink]
        if self.get_option("audit_file"):
            self.target = os.path.abspath(self.get_option("audit_file"))

    def _syslog_sink(self) -> Optional[Sink]:
        address = self.get_option("syslog_address")
        if not address:
            return None
        try:
            handler = logging.handlers.SysLogHandler(
                address=self._syslog_target(address),
                facility=self.get_option("syslog_facility"),
                socktype=socket.SOCK_STREAM if address.startswith("tcp://") else None,
            )
        except Exception as exc:  # no socket at that path, bad address: say so once, go on
            self._display.warning(f"penguinmails.dbops.audit: cannot use syslog at {address}: {exc}")
            return None
        logger = logging.getLogger(f"penguinmails.dbops.audit.{self.run_id}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        handler.setFormatter(logging.Formatter("dbops-audit: %(message)s"))
        handler.handleError = self._raise_handler_error
        return Sink(f"syslog {address}", logger.info)

    @staticmethod
    def _raise_handler_error(record) -> None:
        raise ConnectionError("syslog server did not take the message")

    @staticmethod
    def _syslog_target(address: str):
        if "://" not in address:
            return address
        parts = urlsplit(address)
        return (parts.hostname, parts.port or 514)

    def _http_sink(self) -> Optional[Sink]:
        url = self.get_option("http_url")
        if not url:
            return None
        headers = {"Content-Type": "application/json"}
        if self.get_option("http_token"):
            headers["Authorization"] = f"Bearer {self.get_option('http_token')}"
        timeout = self.get_option("http_timeout")
        validate = self.get_option("validate_certs")

        def post(line: str) -> None:
            open_url(
                url,
                data=line.encode("utf-8"),
                headers=headers,
                method="POST",
                timeout=timeout,
                validate_certs=validate,
                follow_redirects="none",
                use_netrc=False,
            )

        where = urlsplit(url)
        return Sink(f"{where.scheme}://{where.hostname}:{where.port or ''}".rstrip(":"), post)

    # --- playbook events ------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook) -> None:
        path = os.path.abspath(getattr(playbook, "_file_name", "") or "")
        self.playbook = os.path.relpath(path) if path.startswith(os.getcwd() + os.sep) else path

    def v2_playbook_on_play_start(self, play) -> None:
        self.play = play.get_name()
        if self.announced:
            return
        self.announced = True
        self.extra_vars = dict(play.get_variable_manager().extra_vars or {})
        self.operator = self._operator()
        self.incident_id = self._incident_from_extra_vars()
        self._write(
            {
                "event": "playbook_start",
                "check_mode": bool(context.CLIARGS.get("check")),
                "controller": socket.gethostname(),
                "ansible_version": ansible_version,
                "limit": context.CLIARGS.get("subset"),
                "tags": list(context.CLIARGS.get("tags") or []),
                "extra_var_names": sorted(str(name) for name in self.extra_vars),
            }
        )

    def _operator(self) -> str:
        for name in ("awx_user_name", "tower_user_name"):
            if self.extra_vars.get(name):
                return str(self.extra_vars[name])
        try:
            return getpass.getuser()
        except Exception:  # no user name known to the OS
            return f"uid:{os.getuid()}"

    def _incident_from_extra_vars(self) -> Optional[str]:
        """The id the incident modules will use, when the extra vars fix it (same rule, same validation)."""
        job_id = self.extra_vars.get("awx_job_id") or self.extra_vars.get("tower_job_id")
        try:
            return incident.resolve_id(self.extra_vars.get("incident_id"), job_id, None, may_generate=False)
        except incident.IncidentError:
            return None

    def v2_playbook_on_stats(self, stats) -> None:
        hosts = sorted(stats.processed.keys())
        self._write(
            {
                "event": "playbook_end",
                "duration": round(time.monotonic() - self.run_started, 3),
                "recap": {host: stats.summarize(host) for host in hosts},
            }
        )
        if self.held:
            self._release(self._fallback_target())

    # --- task results ---------------------------------------------------------------------

    def v2_runner_on_start(self, host, task) -> None:
        self.started[(host.get_name(), task._uuid)] = time.monotonic()

    def v2_runner_on_ok(self, result) -> None:
        self._task_line(result, "changed" if _result_of(result).get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._task_line(result, "failed", ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result) -> None:
        self._task_line(result, "skipped")

    def v2_runner_on_unreachable(self, result) -> None:
        self._task_line(result, "unreachable")

    def _task_line(self, result, status: str, ignored: bool = False) -> None:
        try:
            record = self._describe(result, status, ignored)
            self._learn_incident(record["module"], _result_of(result))
            self._write(record)
        except Exception as exc:  # the audit trail must never stop a remediation
            self._display.warning(f"penguinmails.dbops.audit: could not record a task result: {exc}")

    def _describe(self, result, status: str, ignored: bool) -> Dict[str, Any]:
        task, host, outcome = _task_of(result), _host_of(result), _result_of(result)
        began = self.started.pop((host.get_name(), task._uuid), None)
        record: Dict[str, Any] = {
            "event": "task",
            "host": host.get_name(),
            "task": task.get_name(),
            "module": getattr(task, "resolved_action", None) or task.action,
            "status": status,
            "duration": round(time.monotonic() - began, 3) if began is not None else None,
        }
        if ignored:
            record["ignored"] = True
        if outcome.get("_ansible_no_log") or "censored" in outcome:
            record["no_log"] = True
            return record
        for key in ("executed_queries", "actions"):
            done = _executed(outcome, key)
            if done:
                record[key] = done
        if status in ("failed", "unreachable") and outcome.get("msg"):
            record["msg"] = redaction.redact_text(str(outcome["msg"]))[
                :MESSAGE_LIMIT
            ]  # before cutting a secret in half
        return record

    def _learn_incident(self, module: str, outcome: Mapping[str, Any]) -> None:
        """The incident modules report the incident id and where its audit file belongs."""
        if module not in INCIDENT_MODULES or outcome.get("failed"):
            return
        incident = outcome.get("incident") or outcome.get("summary") or {}
        paths = outcome.get("paths") or {}
        if incident.get("id"):
            self.incident_id = str(incident["id"])
        if paths.get("audit") and not self.get_option("audit_file") and self.target != paths["audit"]:
            self.target = paths["audit"]
            self._release(self.target)

    # --- writing --------------------------------------------------------------------------

    def _stamp(self, record: Mapping[str, Any]) -> Dict[str, Any]:
        stamped = {
            "ts": audit_time(),
            "run_id": self.run_id,
            "incident_id": self.incident_id,
            "operator": self.operator,
            "playbook": self.playbook,
            "play": self.play,
        }
        stamped.update(record)
        return stamped

    def _write(self, record: Mapping[str, Any]) -> None:
        stamped = self._stamp(record)
        if self.target is None:
            if len(self.held) < MAX_HELD_LINES:
                self.held.append(stamped)
            else:
                self.dropped += 1
            return
        self._append(self.target, stamped)

    def _append(self, path: str, record: Dict[str, Any]) -> None:
        try:
            line = audit.append_record(path, redaction.redact_value(record), fsync=self.get_option("fsync"))
        except OSError as exc:
            self._display.warning(f"penguinmails.dbops.audit: cannot write {path}: {exc.strerror or exc}")
            return
        for sink in self.sinks:
            problem = sink.emit(line)
            if problem:
                self._display.warning(f"penguinmails.dbops.audit: {problem}")

    def _release(self, path: Optional[str]) -> None:
        """Write the lines held until the incident was known (their incident_id is filled in now)."""
        held, self.held = self.held, []
        if path is None:
            self._display.vvv(f"penguinmails.dbops.audit: no incident named; {len(held)} lines not recorded")
            return
        for record in held:
            record["incident_id"] = record.get("incident_id") or self.incident_id
            self._append(path, record)

    def _fallback_target(self) -> Optional[str]:
        base = os.path.abspath(self.get_option("incident_dir") or "incidents")
        if self.incident_id:
            return os.path.join(base, self.incident_id, "audit.jsonl")
        if self.get_option("record_unattributed"):
            return os.path.join(base, "unattributed", "audit.jsonl")
        return None


def audit_time() -> str:
    """UTC, ISO 8601 with milliseconds."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
