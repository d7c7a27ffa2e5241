# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incident notifications: Slack-compatible webhook, PagerDuty Events API v2, e-mail over SMTP.

The incident record keeps a ledger of every notification attempt. A delivery is
planned only for ledger keys that have not been sent yet, so a rerun never pages
people twice for the same escalation level, and a delivery that failed is
retried by the next run. A channel that is down is recorded and skipped for the
rest of the call; it never fails the task. No message, ledger entry or error
text carries a webhook URL, routing key or password: errors name the endpoint
as scheme://host:port only.
"""

from __future__ import annotations

import datetime as dt
import json
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Callable, Dict, List, Mapping, Optional, Set
from urllib.parse import urlsplit

from ansible.module_utils.urls import open_url
from ansible_collections.penguinmails.dbops.plugins.module_utils import incident as record_store
from ansible_collections.penguinmails.dbops.plugins.module_utils.incident_report import summarize
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import redact_text, redact_value

CHANNELS = ("pagerduty", "slack", "email")
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
CLIENT = "penguinmails.dbops"


class ChannelError(Exception):
    """A delivery failed; the message names the endpoint (scheme://host:port) and the reason only."""


# --- transports (every call has a timeout) --------------------------------------------------


def endpoint_of(url: str) -> str:
    """scheme://host:port of a URL: safe to show, unlike the path or query that may hold a token."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def post_json(url: str, payload: Mapping[str, Any], timeout: float, validate_certs: bool) -> str:
    """POST a JSON document; return 'HTTP <status>' or raise ChannelError."""
    where = endpoint_of(url)
    try:
        response = open_url(
            url,
            data=json.dumps(payload).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
            timeout=timeout,
            validate_certs=validate_certs,
            follow_redirects="none",
            use_netrc=False,
        )
        return f"HTTP {response.getcode()}"
    except Exception as exc:  # urllib, socket and TLS errors all end here, as one line
        raise ChannelError(f"{where}: {http_reason(exc, timeout)}") from None


def http_reason(exc: BaseException, timeout: float) -> str:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        body = ""
        try:
            body = exc.read(300).decode("utf-8", "replace").strip()  # type: ignore[attr-defined]
        except Exception:  # the body is a courtesy; the status is what matters
            body = ""
        return f"HTTP {code}" + (f" {body}" if body else "")
    reason = getattr(exc, "reason", None) or exc
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return f"no answer within {timeout:g} s"
    return str(reason).replace("\n", " ")[:300] or type(exc).__name__


def send_email(config: Mapping[str, Any], message: EmailMessage, timeout: float) -> str:
    """Deliver one message over SMTP (optionally STARTTLS or implicit TLS); raise ChannelError."""
    where = f"smtp://{config['host']}:{config['port']}"
    try:
        with smtp_session(config, timeout) as session:
            if config.get("username"):
                session.login(config["username"], config.get("password") or "")
            refused = session.send_message(message)
        if refused:
            return f"accepted except {', '.join(sorted(refused))}"
        return "accepted"
    except smtplib.SMTPAuthenticationError as exc:
        raise ChannelError(f"{where}: authentication failed ({exc.smtp_code})") from None
    except smtplib.SMTPNotSupportedError:
        raise ChannelError(f"{where}: the server does not offer STARTTLS or AUTH") from None
    except smtplib.SMTPResponseException as exc:
        raise ChannelError(f"{where}: server said {exc.smtp_code} {_smtp_text(exc.smtp_error)}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise ChannelError(f"{where}: all recipients refused ({', '.join(sorted(exc.recipients))})") from None
    except (socket.timeout, TimeoutError):
        raise ChannelError(f"{where}: no answer within {timeout:g} s") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise ChannelError(f"{where}: {str(exc).strip() or type(exc).__name__}") from None


def _smtp_text(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.replace("\n", " ")[:200]


def tls_context(config: Mapping[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=config.get("ca_cert") or None)
    if not config.get("validate_certs", True):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def smtp_session(config: Mapping[str, Any], timeout: float) -> smtplib.SMTP:
    security = config.get("security") or "starttls"
    if security == "ssl":
        return smtplib.SMTP_SSL(config["host"], config["port"], timeout=timeout, context=tls_context(config))
    session = smtplib.SMTP(config["host"], config["port"], timeout=timeout)
    if security == "starttls":
        try:
            session.starttls(context=tls_context(config))
        except BaseException:
            session.close()
            raise
    return session


# --- what to say ---------------------------------------------------------------------------


def _contact_line(contact: Mapping[str, Any]) -> str:
    return f"{contact['name']} <{contact['email']}>" if contact.get("email") else contact["name"]


def _headline(header: Mapping[str, Any]) -> str:
    tier = f" on {header['tier']}" if header.get("tier") else ""
    label = header.get("type_label", header["type"])
    return f"[{str(header.get('severity')).upper()}] {label}{tier}: incident {header['id']}"


def _facts(header: Mapping[str, Any], state: Mapping[str, Any]) -> List[str]:
    severity = header["policy"]["severity"]
    return [
        f"Type {header['type']}, tier {header.get('tier') or 'n/a'}, severity {header.get('severity')}"
        f" ({severity.get('description', '')}).",
        f"Detected {header['detected_at']}; response target {header['response_target_minutes']:g} min"
        f" (deadline {state['response_deadline']}).",
        f"Status {header['status']}"
        + (f", outcome {header['outcome']}" if header.get("outcome") else "")
        + f". Operator(s): {', '.join(header.get('operators') or [])}.",
        f"Targets: {', '.join(header.get('targets') or []) or 'n/a'}.",
    ]


def level_text(header: Mapping[str, Any], levels: List[Mapping[str, Any]], state: Mapping[str, Any]) -> str:
    told = [
        f"Level {level['level']} of {state['max_level']} ({level['name']}): "
        + (", ".join(_contact_line(contact) for contact in level["contacts"]) or "no contacts configured")
        for level in levels
    ]
    upcoming = ""
    if state.get("next_level_at") and state["level"] < state["max_level"]:
        upcoming = f"Next level ({state['levels'][state['level']]['name']}) is due at {state['next_level_at']}."
    return "\n".join([_headline(header), *_facts(header, state), "Escalation now due:", *told, upcoming]).strip()


def close_text(header: Mapping[str, Any], summary: Mapping[str, Any], state: Mapping[str, Any]) -> str:
    met = summary.get("response_target_met")
    verdict = "met" if met else "missed"
    return "\n".join(
        [
            _headline(header) + f" closed: {header.get('outcome')}",
            *_facts(header, state),
            f"Mitigated at {header.get('mitigated_at') or 'n/a'}; response target {verdict};"
            f" {summary['changed_steps']} changed step(s) over {summary['runs']} run(s).",
        ]
    )


def email_message(sender: str, recipients: List[str], subject: str, body: str, incident_id: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(dt.datetime.now(dt.timezone.utc))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["X-Dbops-Incident"] = incident_id
    message.set_content(body)
    return message


def pagerduty_event(header: Mapping[str, Any], action: str, routing_key: str) -> Dict[str, Any]:
    """An Events API v2 event; the incident id is the dedup key, so PagerDuty keeps one alert per incident."""
    event: Dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": header["id"]}
    if action != "trigger":
        return event
    event["client"] = CLIENT
    event["payload"] = {
        "summary": _headline(header)[:1024],
        "source": (header.get("targets") or [CLIENT])[0],
        "severity": header["policy"]["severity"].get("pagerduty_severity", "critical"),
        "timestamp": header["detected_at"],
        "component": header.get("tier") or "postgresql",
        "group": header.get("tier") or "postgresql",
        "class": header["type"],
        "custom_details": {
            "incident_id": header["id"],
            "type": header["type"],
            "tier": header.get("tier"),
            "severity": header.get("severity"),
            "operators": header.get("operators"),
            "targets": header.get("targets"),
            "response_target_minutes": header.get("response_target_minutes"),
        },
    }
    return event


# --- planning: what is due and not yet sent ---------------------------------------------------


def sent_keys(ledger: List[Mapping[str, Any]]) -> Set[str]:
    """Keys that need no further attempt: sent, or skipped because nobody could be addressed."""
    return {entry["key"] for entry in ledger if entry.get("status") in ("sent", "skipped")}


def delivery(
    channel: str, event: str, keys: List[str], levels: List[int], recipients: List[str], **body: str
) -> Dict[str, Any]:
    """One planned message; its texts (subject, body) go through the redaction like every other output."""
    texts = {name: redact_text(text) for name, text in body.items()}
    return dict(channel=channel, event=event, keys=keys, levels=levels, recipients=recipients, **texts)


def plan_pagerduty(header: Mapping[str, Any], done: Set[str]) -> List[Dict[str, Any]]:
    if not header["policy"]["severity"].get("page"):
        return []
    action = "trigger"
    if header["status"] == "closed":
        action = header["policy"]["outcomes"].get(header.get("outcome"), {}).get("pagerduty_action") or "none"
    key = f"pagerduty:{action}"
    if action == "none" or key in done:
        return []
    return [delivery("pagerduty", action, [key], [], ["PagerDuty"])]


def new_levels(state: Mapping[str, Any], channel: str, done: Set[str]) -> List[Mapping[str, Any]]:
    return [level for level in state["levels"][: state["level"]] if f"{channel}:level:{level['level']}" not in done]


def plan_slack(
    header: Mapping[str, Any], state: Mapping[str, Any], summary: Mapping[str, Any], done: Set[str]
) -> List[Dict[str, Any]]:
    plans = []
    levels = new_levels(state, "slack", done)
    if levels:
        keys = [f"slack:level:{level['level']}" for level in levels]
        names = [level["name"] for level in levels]
        plans.append(
            delivery(
                "slack",
                "escalation",
                keys,
                [level["level"] for level in levels],
                names,
                text=level_text(header, levels, state),
            )
        )
    close_key = f"slack:close:{header.get('outcome')}"
    if header["status"] == "closed" and close_key not in done:
        plans.append(delivery("slack", "close", [close_key], [], ["channel"], text=close_text(header, summary, state)))
    return plans


def plan_email(
    header: Mapping[str, Any], state: Mapping[str, Any], summary: Mapping[str, Any], done: Set[str]
) -> List[Dict[str, Any]]:
    plans = []
    for level in new_levels(state, "email", done):
        recipients = [_contact_line(contact) for contact in level["contacts"] if contact.get("email")]
        subject = f"{_headline(header)} - escalation level {level['level']} ({level['name']})"
        plans.append(
            delivery(
                "email",
                "escalation",
                [f"email:level:{level['level']}"],
                [level["level"]],
                recipients,
                subject=subject,
                text=level_text(header, [level], state),
            )
        )
    close_key = f"email:close:{header.get('outcome')}"
    if header["status"] == "closed" and close_key not in done:
        told = [_contact_line(contact) for contact in state["contacts_due"] if contact.get("email")]
        subject = f"{_headline(header)} - closed: {header.get('outcome')}"
        plans.append(
            delivery("email", "close", [close_key], [], told, subject=subject, text=close_text(header, summary, state))
        )
    return plans


def plan(
    header: Mapping[str, Any],
    ledger: List[Mapping[str, Any]],
    state: Mapping[str, Any],
    summary: Mapping[str, Any],
    channels: Mapping[str, Any],
) -> List[Dict[str, Any]]:
    """Every delivery due now on the configured channels that the ledger does not show as sent."""
    done = sent_keys(ledger)
    plans: List[Dict[str, Any]] = []
    if channels.get("pagerduty"):
        plans.extend(plan_pagerduty(header, done))
    if channels.get("slack"):
        plans.extend(plan_slack(header, state, summary, done))
    if channels.get("email"):
        plans.extend(plan_email(header, state, summary, done))
    return plans


# --- delivery ----------------------------------------------------------------------------------


def deliver(item: Mapping[str, Any], header: Mapping[str, Any], channels: Mapping[str, Any], timeout: float) -> str:
    """Send one planned delivery; return a short detail or raise ChannelError."""
    channel = item["channel"]
    config = channels[channel]
    if channel == "pagerduty":
        event = pagerduty_event(header, item["event"], config["routing_key"])
        return post_json(config["url"], event, timeout, config.get("validate_certs", True))
    if channel == "slack":
        payload = {"text": item["text"]}
        payload.update((key, config[key]) for key in ("channel", "username") if config.get(key))
        return post_json(config["webhook_url"], payload, timeout, config.get("validate_certs", True))
    message = email_message(config["sender"], item["recipients"], item["subject"], item["text"], header["id"])
    return send_email(config, message, timeout)


def deliver_all(
    plans: List[Dict[str, Any]],
    header: Mapping[str, Any],
    channels: Mapping[str, Any],
    timeout: float,
    send: Optional[Callable[..., str]] = None,
) -> List[Dict[str, Any]]:
    """Attempt each delivery; after a channel fails once, the rest of its deliveries are not attempted."""
    send = send or deliver
    outcomes = []
    down: Dict[str, str] = {}
    for item in plans:
        channel = item["channel"]
        if not item["recipients"]:
            outcomes.append(dict(item, status="skipped", error="no contact of this level has an address"))
        elif channel in down:
            outcomes.append(dict(item, status="failed", error=f"not attempted: {down[channel]}"))
        else:
            try:
                outcomes.append(dict(item, status="sent", detail=send(item, header, channels, timeout)))
            except ChannelError as exc:
                down[channel] = str(exc)
                outcomes.append(dict(item, status="failed", error=str(exc)))
    return outcomes


def ledger_entries(outcome: Mapping[str, Any], at: str, run: int) -> List[Dict[str, Any]]:
    """One ledger entry per key a delivery covered (a Slack message may announce several levels)."""
    keys = outcome["keys"]
    levels = outcome["levels"] if len(outcome["levels"]) == len(keys) else [None] * len(keys)
    entries = []
    for key, level in zip(keys, levels):
        entry = {
            "key": key,
            "at": at,
            "run": run,
            "channel": outcome["channel"],
            "event": outcome["event"],
            "level": level,
            "recipients": outcome["recipients"],
            "status": outcome["status"],
        }
        entry.update((name, outcome[name]) for name in ("detail", "error") if outcome.get(name))
        entries.append(entry)
    return entries


def public_view(item: Mapping[str, Any]) -> Dict[str, Any]:
    """What a result shows about a delivery: never the message body (it is in the report)."""
    return {
        key: item[key]
        for key in ("channel", "event", "levels", "recipients", "status", "detail", "error")
        if key in item
    }


# --- configuration -------------------------------------------------------------------------------


def configured_channels(params: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The channels that are set up and enabled, validated; a half-configured channel is an error."""
    channels = {}
    required = {"pagerduty": ("routing_key",), "slack": ("webhook_url",), "email": ("host", "sender")}
    for name in CHANNELS:
        config = params.get(name)
        if not config or config.get("enabled") is False:
            continue
        if not any(config.get(key) for key in required[name]):
            continue
        if name != "email" and urlsplit(config.get("url") or config.get("webhook_url")).scheme not in ("http", "https"):
            raise record_store.IncidentError(f"{name} channel: the URL must be http:// or https://")
        missing = [key for key in required[name] if not config.get(key)]
        if missing:
            raise record_store.IncidentError(f"{name} channel: set {', '.join(missing)} (or disable the channel)")
        channels[name] = dict(config)
        channels[name].setdefault("validate_certs", params.get("validate_certs", True))
    return channels


def argument_spec() -> Dict[str, Any]:
    return {
        "id": {"type": "str"},
        "job_id": {"type": "str"},
        "dir": {"type": "path", "default": "incidents"},
        "incident": {"type": "dict"},
        "timeout": {"type": "float", "default": 10},
        "validate_certs": {"type": "bool", "default": True},
        "slack": {
            "type": "dict",
            "options": {
                "webhook_url": {"type": "str", "no_log": True},
                "channel": {"type": "str"},
                "username": {"type": "str"},
                "enabled": {"type": "bool", "default": True},
            },
        },
        "pagerduty": {
            "type": "dict",
            "options": {
                "routing_key": {"type": "str", "no_log": True},
                "url": {"type": "str", "default": PAGERDUTY_URL},
                "enabled": {"type": "bool", "default": True},
            },
        },
        "email": {
            "type": "dict",
            "options": {
                "host": {"type": "str"},
                "port": {"type": "int", "default": 25},
                "security": {"type": "str", "default": "starttls", "choices": ["none", "starttls", "ssl"]},
                "username": {"type": "str"},
                "password": {"type": "str", "no_log": True},
                "sender": {"type": "str"},
                "validate_certs": {"type": "bool", "default": True},
                "ca_cert": {"type": "path"},
                "enabled": {"type": "bool", "default": True},
            },
        },
    }


# --- the module entry point ----------------------------------------------------------------------


def run(params: Mapping[str, Any], check_mode: bool, now: Optional[dt.datetime] = None) -> Dict[str, Any]:
    """Send what is due for the incident and record it; in check mode only plan. The result is redacted."""
    return redact_value(notify_incident(params, check_mode, now or record_store.now_utc()))


def notify_incident(params: Mapping[str, Any], check_mode: bool, now: dt.datetime) -> Dict[str, Any]:
    if params["timeout"] <= 0:
        raise record_store.IncidentError("timeout must be more than 0 seconds")
    channels = configured_channels(params)
    incident_id = record_store.resolve_id(params.get("id"), params.get("job_id"), now, may_generate=False)
    paths = record_store.incident_paths(params.get("dir") or "incidents", incident_id)
    if check_mode:
        return _plan_only(params, paths, channels, now)
    outcomes: List[Dict[str, Any]] = []
    try:
        with record_store.locked(paths, create=True):
            record = record_store.load_record(paths)
            if record is None:
                raise record_store.IncidentError(
                    f"incident {incident_id} has no record in {paths['dir']}: open it first"
                )
            state = record_store.note_escalation(record, now)
            plans = plan(record, record["notifications"], state, summarize(record), channels)
            outcomes = deliver_all(plans, record, channels, params["timeout"])
            record_outcomes(record, outcomes, now)
            summary = record_store.save_record(paths, record)
    except record_store.RecordWriteError as exc:
        result = _result(outcomes, None, None, paths, channels)
        result["warnings"].append(f"incident {incident_id}: the notification ledger could not be written: {exc}")
        return result
    return _result(outcomes, state, summary, paths, channels)


def record_outcomes(record: Dict[str, Any], outcomes: List[Mapping[str, Any]], now: dt.datetime) -> None:
    """Append ledger entries; a failure also goes on the timeline so the report shows it in order."""
    at = record_store.format_time(now)
    run_number = record_store.current_run(record)
    for outcome in outcomes:
        record["notifications"].extend(redact_value(ledger_entries(outcome, at, run_number)))
        if outcome["status"] == "failed":
            note = {"kind": "notification", "name": f"notify via {outcome['channel']}", "result": outcome["error"]}
            record_store.append_entry(record, dict(note, changed=False, failed=True), now)


def _plan_only(
    params: Mapping[str, Any], paths: Mapping[str, str], channels: Mapping[str, Any], now: dt.datetime
) -> Dict[str, Any]:
    """Check mode: what would be sent, from the check-mode record preview and the ledger on disk."""
    record = record_store.load_record(paths)
    preview = params.get("incident") or (record_store.header(record) if record else None)
    if not preview or "policy" not in preview:
        return {
            "changed": False,
            "planned": [],
            "sent": [],
            "failures": [],
            "paths": dict(paths),
            "msg": "check mode: the incident has no record yet and no preview was given; nothing to plan",
        }
    header = dict(preview)
    ledger = record["notifications"] if record else []
    full = dict(header, timeline=record["timeline"] if record else [], notifications=ledger)
    state = record_store.escalation_now(full, now)
    plans = plan(header, ledger, state, summarize(full), channels)
    return {
        "changed": False,
        "planned": [public_view(item) for item in plans],
        "sent": [],
        "failures": [],
        "escalation": state,
        "paths": dict(paths),
        "channels": sorted(channels),
    }


def _result(
    outcomes: List[Mapping[str, Any]],
    state: Optional[Mapping[str, Any]],
    summary: Optional[Mapping[str, Any]],
    paths: Mapping[str, str],
    channels: Mapping[str, Any],
) -> Dict[str, Any]:
    """The task result: "failures" and "not_sent", never "failed" or "skipped" (Ansible's own status keys)."""
    failures = [public_view(item) for item in outcomes if item["status"] == "failed"]
    result = {
        "changed": False,
        "sent": [public_view(item) for item in outcomes if item["status"] == "sent"],
        "failures": failures,
        # Not "skipped": Ansible would show a task that paged people as skipped.
        "not_sent": [public_view(item) for item in outcomes if item["status"] == "skipped"],
        "warnings": [
            f"notification via {item['channel']} ({item['event']}) failed: {item['error']}" for item in failures
        ],
        "escalation": state,
        "summary": summary,
        "paths": dict(paths),
        "channels": sorted(channels),
    }
    if summary:
        result["ansible_stats"] = {"data": {"dbops_incident": summary}, "per_host": False, "aggregate": False}
    return result
