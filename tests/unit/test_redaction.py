"""The one redaction: every secret family masked in text and in structures, everything else left alone."""

import pytest
from ansible_collections.penguinmails.dbops.plugins.module_utils import redaction
from ansible_collections.penguinmails.dbops.plugins.module_utils.redaction import MASK, redact_text, redact_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # URL userinfo
        ("postgresql://app:hunter2@db:5432/x", "postgresql://app:********@db:5432/x"),
        (
            "see https://admin:p%40ss@panel.example.org/login now",
            "see https://admin:********@panel.example.org/login now",
        ),
        ("postgresql://app@db:5432/x", "postgresql://app@db:5432/x"),
        # URL query and fragment values, all of them
        ("http://panel/x?token=abc", "http://panel/x?token=********"),
        ("http://panel/x?a=1&sig=zz;b=2", "http://panel/x?a=********&sig=********;b=********"),
        ('{"url": "https://p/?key=abc"}', '{"url": "https://p/?key=********"}'),
        ("https://app/cb#access_token=abc", "https://app/cb#access_token=********"),
        # webhook URL paths
        ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", "https://hooks.slack.com/********"),
        ("https://discord.com/api/webhooks/123/SECRETTOKEN", "https://discord.com/********"),
        (
            "https://acme.webhook.office.com/webhookb2/abc/IncomingWebhook/def",
            "https://acme.webhook.office.com/********",
        ),
        ("http://127.0.0.1:8080/hook?token=abc", "http://127.0.0.1:8080/********?token=********"),
        ("https://events.pagerduty.com/v2/enqueue", "https://events.pagerduty.com/v2/enqueue"),
        # key=value, key: value, JSON
        ("host=db user=app password=hunter2 dbname=x", "host=db user=app password=******** dbname=x"),
        ("host=db password='a b' dbname=x", "host=db password='********' dbname=x"),
        (r"host=db password='it\'s' dbname=x", "host=db password='********' dbname=x"),
        ('password="a b c" next', 'password="********" next'),
        ("PGPASSWORD=hunter2 psql -h db", "PGPASSWORD=******** psql -h db"),
        ("export PGPASSWORD='x y'", "export PGPASSWORD='********'"),
        ("api_key=abc123&x", "api_key=********&x"),
        ("X-Api-Key: abc123", "X-Api-Key: ********"),
        ("token: abc123", "token: ********"),
        ("routing_key=R0UT", "routing_key=********"),
        ('{"password": "hunter2", "user": "app"}', '{"password": "********", "user": "app"}'),
        ('{"api_key":"k1","n":1}', '{"api_key":"********","n":1}'),
        ("db_password: s3cr3t\nnext: line", "db_password: ********\nnext: line"),
        ("password:\nnext: line", "password:\nnext: line"),
        # Authorization and Bearer
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ********"),
        ("authorization=Basic dXNlcjpwdw==", "authorization=Basic ********"),
        ("curl -H 'Authorization: Token xyz'", "curl -H 'Authorization: Token ********'"),
        ("sent with bearer eyJhbGciOi.x.y", "sent with bearer ********"),
        # SQL password literals
        ("ALTER ROLE app PASSWORD 'hunter2'", "ALTER ROLE app PASSWORD '********'"),
        ("ALTER ROLE app WITH ENCRYPTED PASSWORD 'it''s'", "ALTER ROLE app WITH ENCRYPTED PASSWORD '********'"),
        # PEM private keys
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", MASK),
        # left alone
        ("SELECT pg_promote(true, 30)", "SELECT pg_promote(true, 30)"),
        ("password authentication failed for user app", "password authentication failed for user app"),
        ("max_tokens=5 passed=3", "max_tokens=5 passed=3"),
        ("https://panel.example.org/incidents/INC-7", "https://panel.example.org/incidents/INC-7"),
        ("", ""),
    ],
)
def test_secrets_in_text_are_masked(text, expected):
    assert redact_text(text) == expected


@pytest.mark.parametrize("text", ["password=hunter2", "https://u:pw@h/x?t=1", "Authorization: Bearer abc"])
def test_redacting_twice_changes_nothing(text):
    assert redact_text(redact_text(text)) == redact_text(text)


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("password", True),
        ("login_password", True),
        ("PGPASSWORD", True),
        ("passwd", True),
        ("pwd", True),
        ("client_secret", True),
        ("auth_token", True),
        ("api_key", True),
        ("apikey", True),
        ("apiKey", True),
        ("X-Api-Key", True),
        ("routing_key", True),
        ("integration_key", True),
        ("Authorization", True),
        ("webhook_url", True),
        ("slack.webhook-url", True),
        ("credentials", True),
        ("passed", False),
        ("bypassed_rules", False),
        ("primary_key", False),
        ("key", False),
        ("url", False),
        ("query", False),
        ("max_tokens", False),
    ],
)
def test_secret_key_names(key, secret):
    assert redaction.is_secret_key(key) is secret


def test_values_are_redacted_through_dicts_and_lists():
    data = {
        "login_password": "a",
        "routing_key": "b",
        "webhook_url": "https://hooks.slack.com/services/T/B/C",
        "nested": [{"api_key": "d", "passed": 3}, ("password=e",)],
        "headers": {"Authorization": "Bearer f"},
        "query": "SELECT 1",
        "dsn": "host=db password=g",
        "token": None,
        "secret": "",
        "count": 7,
    }
    assert redact_value(data) == {
        "login_password": MASK,
        "routing_key": MASK,
        "webhook_url": MASK,
        "nested": [{"api_key": MASK, "passed": 3}, ["password=" + MASK]],
        "headers": {"Authorization": MASK},
        "query": "SELECT 1",
        "dsn": "host=db password=" + MASK,
        "token": None,
        "secret": "",
        "count": 7,
    }


def test_the_input_is_not_modified():
    data = {"password": "a", "items": ["password=b"]}
    redact_value(data)
    assert data == {"password": "a", "items": ["password=b"]}
