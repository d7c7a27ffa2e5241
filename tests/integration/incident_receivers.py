"""Real local receivers for the incident notification and audit tests (all on 127.0.0.1).

* HttpReceiver - a threaded http.server that records every request (Slack-style webhooks,
  PagerDuty Events API v2, the audit callback's HTTP copy) and can be told to fail or to hang
  for a path prefix.
* SmtpReceiver - a real SMTP server (aiosmtpd), optionally with AUTH and STARTTLS.
* SyslogReceiver - a UDP socket collecting syslog datagrams.
* self_signed_certificate - a certificate for 127.0.0.1, for STARTTLS.

Fixtures for test modules: http_receiver, smtp_receiver, syslog_receiver. Import them from
this module (tests/integration/conftest.py belongs to the lab).
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class HttpReceiver:
    """Records requests; ``behave(prefix, 'error' | 'hang' | 'ok')`` changes answers for a path prefix."""

    def __init__(self, hang_seconds: float = 6.0) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.behaviour: Dict[str, str] = {}
        self.hang_seconds = hang_seconds
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                mode = receiver.mode_for(self.path)
                if mode == "hang":
                    time.sleep(receiver.hang_seconds)
                receiver.record(self.command, self.path, dict(self.headers), body, mode)
                if mode == "error":
                    self.respond(500, b'{"status": "error", "message": "down for the test"}')
                elif self.path.startswith("/pagerduty"):
                    event = json.loads(body or b"{}")
                    answer = {"status": "success", "message": "Event processed", "dedup_key": event.get("dedup_key")}
                    self.respond(202, json.dumps(answer).encode())
                else:
                    self.respond(200, b"ok")

            def do_GET(self):
                receiver.record(self.command, self.path, dict(self.headers), b"", "ok")
                self.respond(200, b'{"ok": true}')

            def respond(self, status, payload):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        return Handler

    def mode_for(self, path: str) -> str:
        for prefix, mode in self.behaviour.items():
            if path.startswith(prefix):
                return mode
        return "ok"

    def behave(self, prefix: str, mode: str) -> None:
        self.behaviour[prefix] = mode

    def record(self, method, path, headers, body, mode) -> None:
        with self.lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body, "mode": mode})

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def received(self, prefix: str, answered_ok: bool = True) -> List[Dict[str, Any]]:
        """JSON bodies of the POSTs to a path prefix (by default only those answered with success)."""
        with self.lock:
            return [
                json.loads(request["body"])
                for request in self.requests
                if request["method"] == "POST"
                and request["path"].startswith(prefix)
                and (request["mode"] == "ok" or not answered_ok)
            ]

    def __enter__(self) -> HttpReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Inbox:
    def __init__(self, received: List[Dict[str, Any]]) -> None:
        self.received = received

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        login = getattr(session, "auth_data", None)
        self.received.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message": message,
                "raw": envelope.content,
                "login": login.login.decode() if isinstance(login, LoginPassword) else None,
                "tls": session.ssl is not None,
            }
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1; with ``credentials`` it requires AUTH, with ``tls_context`` it offers STARTTLS."""

    def __init__(self, credentials: Optional[tuple] = None, tls_context: Optional[ssl.SSLContext] = None) -> None:
        self.messages: List[Dict[str, Any]] = []
        self.port = free_port()
        parameters: Dict[str, Any] = {}
        if credentials:
            parameters.update(authenticator=self._authenticator(credentials), auth_required=True)
            parameters["auth_require_tls"] = tls_context is not None
        if tls_context:
            parameters.update(tls_context=tls_context, require_starttls=True)
        self.controller = Controller(_Inbox(self.messages), hostname="127.0.0.1", port=self.port, **parameters)

    @staticmethod
    def _authenticator(credentials):
        user, password = credentials

        def check(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
                user.encode(),
                password.encode(),
            )
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        return check

    def to(self, address: str) -> List[Dict[str, Any]]:
        return [item for item in self.messages if address in item["rcpt_tos"]]

    def __enter__(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class SyslogReceiver:
    """Collects UDP syslog datagrams."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.datagrams: List[bytes] = []
        self.running = True
        self.thread = threading.Thread(target=self._collect, daemon=True)

    @property
    def address(self) -> str:
        return f"udp://127.0.0.1:{self.socket.getsockname()[1]}"

    def _collect(self) -> None:
        while self.running:
            try:
                self.datagrams.append(self.socket.recv(65535))
            except socket.timeout:
                continue
            except OSError:
                return

    def __enter__(self) -> SyslogReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.socket.close()


def self_signed_certificate(directory) -> tuple:
    """(certificate path, key path) for CN/SAN 127.0.0.1, valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "smtp-cert.pem"
    key_path = directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def http_receiver():
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp_receiver():
    with SmtpReceiver() as receiver:
        yield receiver


@pytest.fixture
def syslog_receiver():
    with SyslogReceiver() as receiver:
        yield receiver
