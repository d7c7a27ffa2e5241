"""The password rotation's pure parts: the SCRAM-SHA-256 verifier (RFC 7677's example), the refusals,
the operator's file and its ansible-vault encryption (read back by ansible's own VaultLib)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible_collections.penguinmails.dbops.plugins.module_utils import passwords

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_AUTH_MESSAGE = (
    "n=user,r=rOprNGfwEbeRWgbNEkqO,"
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
)
RFC_CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_the_verifier_answers_rfc_7677s_exchange():
    verifier = passwords.scram_verifier("pencil", base64.b64decode(RFC_SALT))
    method, rest = verifier.split("$", 1)
    header, keys = rest.split("$")
    iterations, salt = header.split(":")
    stored_key, server_key = (base64.b64decode(part) for part in keys.split(":"))
    assert (method, iterations, salt) == ("SCRAM-SHA-256", "4096", RFC_SALT)
    server_signature = hmac.new(server_key, RFC_AUTH_MESSAGE.encode(), hashlib.sha256).digest()
    assert base64.b64encode(server_signature).decode() == RFC_SERVER_SIGNATURE
    # The client's proof XOR its signature is the ClientKey, whose SHA-256 is the StoredKey.
    client_signature = hmac.new(stored_key, RFC_AUTH_MESSAGE.encode(), hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(RFC_CLIENT_PROOF), client_signature))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_every_verifier_has_its_own_salt_and_secrets_are_strong():
    assert passwords.scram_verifier("same") != passwords.scram_verifier("same")
    secrets = {passwords.new_secret() for count in range(20)}
    assert len(secrets) == 20 and all(len(secret) >= 43 and secret.isascii() for secret in secrets)


@pytest.mark.parametrize("password", ["caf\u00e9", "tab\there"])
def test_a_password_that_would_need_saslprep_is_refused(password):
    with pytest.raises(ValueError):
        passwords.scram_verifier(password)


ROLES = {"app": {}, "dbops": {}, "other": {}}


@pytest.mark.parametrize(
    ("roles", "refusal"),
    [
        (["app"], None),
        (["app", "other"], None),
        ([], "no role to rotate"),
        (["app", "app"], "named twice"),
        (["ghost"], "no role ghost on the server; no password was changed"),
        (["app", "dbops"], "it is the role this run logs in with (dbops_login_user); no password was changed"),
    ],
)
def test_rotation_refusal(roles, refusal):
    found = passwords.rotation_refusal(roles, ROLES, "dbops")
    assert found is None if refusal is None else refusal in found


def test_the_secrets_file_is_yaml_and_vault_encrypted_ansible_reads_it():
    text = passwords.secrets_file_text({"b_role": 'x"y:z', "a_role": "plain"})
    assert yaml.safe_load(text) == {"a_role": "plain", "b_role": 'x"y:z'}
    vaulted = passwords.vault_encrypt(text.encode(), b"operator-pass")
    assert vaulted.startswith(b"$ANSIBLE_VAULT;1.1;AES256\n") and b"plain" not in vaulted
    assert VaultLib([("default", VaultSecret(b"operator-pass"))]).decrypt(vaulted) == text.encode()
    with pytest.raises(Exception, match="Decryption failed"):
        VaultLib([("default", VaultSecret(b"wrong"))]).decrypt(vaulted)
    with pytest.raises(ValueError):
        passwords.vault_encrypt(b"x", b"")
