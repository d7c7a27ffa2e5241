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
  - By default each line goes to the incident's own directory, C(<incident dir>/<id>/audit.jsonl), created
    mode 0600. A task whose result names incidents (M(penguinmails.dbops.dbops_incident) and
    M(penguinmails.dbops.dbops_notify), per loop item in a loop) is filed under each incident it names; any
    other line under every incident the run has named, so a run that opens several incidents (triage) gives
    each a complete trail.
  - Lines are held until the run names an incident, or until it runs a module that can change a server (any
    module not known to be read-only, or a result reported changed). Then they are written under the incident
    the C(incident_id) / C(awx_job_id) extra variable names, else in the run-level trail
    C(<incident dir>/unattributed/audit.jsonl) (every line carries the run's C(run_id)). A run that names no
    incident and changes nothing (it only read, or refused its inputs) writes nothing unless
    O(record_unattributed) is set. O(audit_file) names one file for everything instead.
  - A line that cannot be written is a warning on the console, and the number of such lines is added to the
    incident's C(audit_dropped) (in C(summary.json) and the report) at the end of the run.
  - In check mode no file is written; the copies to syslog and HTTP are still sent.
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
        C(awx_job_id) or C(tower_job_id) extra variable and never open it, and for the run-level trail.
        Relative to the working directory. The C(dbops_incident_dir) extra variable, when given, takes its place.
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
      - Also record runs that name no incident and change nothing, in C(<incident_dir>/unattributed/audit.jsonl).
        Runs that can change a server are recorded there anyway.
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
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ansible import context
from ansible.module_utils.urls import open_url
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version
from ansible_collections.penguinmails.dbops.plugins.module_utils import audit, audit_trail, incident, redaction

MESSAGE_LIMIT = 500


def _result_of(result) -> Mapping[str, Any]:
    """The result dictionary (ansible-core 2.19 names it ``result``, earlier versions ``_result``)."""
    value = getattr(result, "result", None)
    return value if isinstance(value, Mapping) else result._result


def _task_of(result):
    return getattr(result, "task", None) or result._task


def _host_of(result):
    return getattr(result, "host", None) or result._host


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
        self.operator = ""
        self.router: Optional[audit_trail.TrailRouter] = None
        self.check_mode = False
        self.dropped: Dict[str, int] = {}
        self.check_mode_chains: Dict[str, Tuple[int, str]] = {}
        self.started: Dict[Any, float] = {}
        self.run_started = time.monotonic()
        self.sinks: List[Sink] = []
        self.extra_vars: Mapping[str, Any] = {}
        self.announced = False

    # --- configuration --------------------------------------------------------------------

    def set_options(self, task_keys=None, var_options=None, direct=None) -> None:
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        self.sinks = [sink for sink in (self._syslog_sink(), self._http_sink()) if sink]

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
        self.check_mode = bool(context.CLIARGS.get("check"))
        self.router = audit_trail.TrailRouter(
            str(self.extra_vars.get("dbops_incident_dir") or self.get_option("incident_dir") or "incidents"),
            audit_file=self.get_option("audit_file"),
            expected_incident=self._incident_from_extra_vars(),
            record_unattributed=self.get_option("record_unattributed"),
        )
        self._write_all(
            self.router.file(
                self._stamp(
                    {
                        "event": "playbook_start",
                        "check_mode": self.check_mode,
                        "controller": socket.gethostname(),
                        "ansible_version": ansible_version,
                        "limit": context.CLIARGS.get("subset"),
                        "tags": list(context.CLIARGS.get("tags") or []),
                        "extra_var_names": sorted(str(name) for name in self.extra_vars),
                    }
                )
            )
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
        if self.router is None:
            return
        hosts = sorted(stats.processed.keys())
        end = {
            "event": "playbook_end",
            "duration": round(time.monotonic() - self.run_started, 3),
            "recap": {host: stats.summarize(host) for host in hosts},
        }
        self._write_all(self.router.finish(self._stamp(end)))
        self._report_dropped()

    # --- task results ---------------------------------------------------------------------

    def v2_runner_on_start(self, host, task) -> None:
        self.started[(host.get_name(), task._uuid)] = time.monotonic()
        if self.router is not None:
            module = getattr(task, "resolved_action", None) or task.action
            method = str(task.args.get("method") or "GET").upper()
            self._write_all(self.router.task_starting(module, method, task.check_mode is True))

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
            record = self._stamp(self._describe(result, status, ignored))
            module, outcome = record["module"], _result_of(result)
            self._write_all(self.router.learn(audit_trail.incidents_named(module, outcome)))
            for incident_id, line in audit_trail.split_by_incident(record, module, outcome):
                self._write_all(self.router.file(line, incident_id))
        except Exception as exc:  # the audit trail must never stop a remediation
            self._count_dropped("(no file chosen)")
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
        if audit_trail.canonical_module(record["module"]) == "ansible.builtin.uri":
            record["method"] = str(task.args.get("method") or "GET").upper()  # a GET changes nothing
        if task.check_mode is True:
            record["check_mode"] = True  # forced into check mode (check_mode: true): it changes nothing
        if ignored:
            record["ignored"] = True
        if outcome.get("_ansible_no_log") or "censored" in outcome:
            record["no_log"] = True
            return record
        for key in ("executed_queries", "actions"):
            done = audit_trail.executed_in(outcome, key)
            if done:
                record[key] = done
        if status in ("failed", "unreachable") and outcome.get("msg"):
            # Redacted before it is cut: a secret cut in half no longer looks like one.
            record["msg"] = redaction.redact_text(str(outcome["msg"]))[:MESSAGE_LIMIT]
        return record

    # --- writing --------------------------------------------------------------------------

    def _stamp(self, record: Mapping[str, Any]) -> Dict[str, Any]:
        stamped = {
            "ts": audit_time(),
            "run_id": self.run_id,
            "incident_id": None,  # set by the router to the incident the line is filed under
            "operator": self.operator,
            "playbook": self.playbook,
            "play": self.play,
        }
        stamped.update(record)
        return stamped

    def _write_all(self, writes: List[audit_trail.Write]) -> None:
        for path, record in writes:
            self._append(path, redaction.redact_value(record))

    def _append(self, path: str, record: Dict[str, Any]) -> None:
        """Append one line to ``path`` and copy it to the sinks; in check mode only copy it."""
        if self.check_mode:
            line = self._check_mode_line(path, record)
        else:
            try:
                line = audit.append_record(path, record, fsync=self.get_option("fsync"))
            except OSError as exc:
                if not self._count_dropped(path):
                    self._display.warning(
                        f"penguinmails.dbops.audit: cannot write {path}: {exc.strerror or exc}; lines of this run"
                        " are missing from that trail (counted in the incident's audit_dropped)"
                    )
                return
        for sink in self.sinks:
            problem = sink.emit(line)
            if problem:
                self._display.warning(f"penguinmails.dbops.audit: {problem}")

    def _check_mode_line(self, path: str, record: Mapping[str, Any]) -> str:
        """The chained line a real run would append, chained in memory: check mode writes no file."""
        seq, prev = self.check_mode_chains.get(path, (1, audit.GENESIS))
        line = audit.render_line(record, seq, prev)
        self.check_mode_chains[path] = (seq + 1, audit.line_hash(line))
        return line

    def _count_dropped(self, path: str) -> int:
        """Count one line lost for ``path``; return how many were lost there before it."""
        before = self.dropped.get(path, 0)
        self.dropped[path] = before + 1
        return before

    def _report_dropped(self) -> None:
        """Say how many lines each trail lost, and add them to the incident's audit_dropped."""
        incidents = {path: incident_id for incident_id, path in self.router.known.items()}
        for path, count in self.dropped.items():
            self._display.warning(
                f"penguinmails.dbops.audit: {count} audit line(s) of this run could not be written to {path}"
            )
            if path not in incidents:
                continue
            paths = incident.incident_paths(os.path.dirname(os.path.dirname(path)), incidents[path])
            try:
                incident.record_audit_dropped(paths, count)
            except incident.IncidentError as exc:
                self._display.warning(f"penguinmails.dbops.audit: could not note the lost lines in the record: {exc}")


def audit_time() -> str:
    """UTC, ISO 8601 with milliseconds."""
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
