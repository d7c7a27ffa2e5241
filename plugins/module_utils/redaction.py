# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one secret redaction of penguinmails.dbops: every output path goes through it.

``redact_text`` masks secrets inside free text: URL passwords (``user:pw@``), URL
query and fragment values, webhook URL paths (the path of a Slack or Teams hook
is its secret), values of secret-named keys in ``key=value``, ``key: value`` and
JSON (libpq ``password='a b'``, ``PGPASSWORD=``, ``api_key=``), ``Authorization``
headers, ``Bearer`` tokens, SQL ``PASSWORD '...'`` literals and PEM private keys.
``redact_value`` does the same through dicts and lists and masks the whole value
under a secret-named key.

Standard library only and no Ansible import: the audit callback, the modules and
the tools/ command-line scripts all use it.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Match

MASK = "********"

# Words that make a key secret wherever they appear in it as a word ("login_password", "apiKey").
SECRET_WORDS = frozenset(
    {
        "pass",
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "pgpassword",
        "secret",
        "token",
        "apikey",
        "authorization",
        "credential",
        "credentials",
        "cookie",
    }
)
# Two-word keys that are secrets although neither word is ("routing_key", "webhook_url").
SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("routing", "key"),
        ("integration", "key"),
        ("private", "key"),
        ("access", "key"),
        ("secret", "key"),
        ("webhook", "url"),
        ("hook", "url"),
    }
)
_KEY_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# A key in free text whose value is a secret: any identifier ending in a secret word.
_TEXT_KEY = (
    r"(?<![A-Za-z0-9])(?:[A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|token"
    r"|api[_-]?key|routing[_-]?key|integration[_-]?key|private[_-]?key|access[_-]?key|webhook[_-]?url"
    r"|credentials?)|pwd|pass)"
)
_QUOTED = r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\""
_KEY_VALUE = re.compile(
    r"(?i)(" + _TEXT_KEY + r"[\"']?[ \t]*[=:][ \t]*)(?:(?P<quoted>" + _QUOTED + r")|[^\s,;&'\"}\]]+)"
)
_AUTHORIZATION = re.compile(
    r"(?i)(authorization[\"']?[ \t]*[=:][ \t]*[\"']?(?:(?:bearer|basic|token|digest|negotiate)[ \t]+)?)"
    r"[^\s\"',;]+"
)
_BEARER = re.compile(r"(?i)\b(bearer[ \t]+)(?!\*{8})[A-Za-z0-9._~+/=-]+")
_SQL_PASSWORD = re.compile(r"(?i)\b(password[ \t]+)'(?:[^']|'')*'")
_PEM_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|$)", re.DOTALL)
_URL = re.compile(
    r"(?i)\b(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<authority>[^\s/?#\"'<>]*)"
    r"(?P<path>/[^\s?#\"'<>]*)?(?P<query>\?[^\s#\"'<>]*)?(?P<fragment>#[^\s\"'<>]*)?"
)
_USERINFO_PASSWORD = re.compile(r"^([^:@]*:)[^@]+@")
_PARAMETER_VALUE = re.compile(r"=[^&;]*")
_HOOK_SEGMENT = re.compile(r"(?i)^(?:web)?hooks?(?:b2)?$")


def is_secret_key(key: Any) -> bool:
    """Whether the value under this key is a secret ("login_password", "routing_key", "X-Api-Key", "apiKey")."""
    words = [word.lower() for word in _KEY_WORD.findall(str(key))]
    if any(word in SECRET_WORDS for word in words):
        return True
    return any(pair in SECRET_PAIRS for pair in zip(words, words[1:]))


def is_webhook(host: str, path: str) -> bool:
    """Whether a URL's path is a webhook secret: a hooks.* or *webhook* host, or a hook/webhooks segment."""
    host = host.lower()
    if host.startswith("hooks.") or "webhook" in host:
        return True
    return any(_HOOK_SEGMENT.match(segment) for segment in path.split("/"))


def _mask_parameters(part: str) -> str:
    return _PARAMETER_VALUE.sub("=" + MASK, part)


def _redact_url(found: Match) -> str:
    authority = _USERINFO_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", found.group("authority"))
    path = found.group("path") or ""
    if path and path != "/" and is_webhook(authority.rsplit("@", 1)[-1], path):
        path = "/" + MASK
    query = _mask_parameters(found.group("query") or "")
    fragment = _mask_parameters(found.group("fragment") or "")
    return found.group("scheme") + authority + path + query + fragment


def _mask_key_value(found: Match) -> str:
    quoted = found.group("quoted")
    if quoted:
        return found.group(1) + quoted[0] + MASK + quoted[0]
    return found.group(1) + MASK


def redact_text(text: str) -> str:
    """``text`` with every secret it carries replaced by ``********``; anything else unchanged."""
    text = _PEM_KEY.sub(MASK, text)
    text = _URL.sub(_redact_url, text)
    text = _SQL_PASSWORD.sub(lambda m: m.group(1) + "'" + MASK + "'", text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    return _KEY_VALUE.sub(_mask_key_value, text)


def redact_value(value: Any) -> Any:
    """A copy of ``value`` with values under secret-named keys masked and secrets in strings redacted.

    A secret key whose value is None or empty keeps it, so "not set" stays visible.
    """
    if isinstance(value, Mapping):
        return {key: _redact_item(key, item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(item) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redact_item(key: Any, item: Any) -> Any:
    if is_secret_key(key) and item not in (None, ""):
        return MASK
    return redact_value(item)
