# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""New role passwords for the security breach runbook: a strong secret and its SCRAM-SHA-256 verifier.

The verifier is what PostgreSQL stores (pg_authid.rolpassword) and what ALTER ROLE ... PASSWORD is
given, so the clear text never reaches the server (nor its log, with log_statement on). It is
computed here as libpq's PQencryptPasswordConn does (RFC 5802 and RFC 7677): PBKDF2-HMAC-SHA-256 over
the password with a random salt, ClientKey/ServerKey as HMACs of it, StoredKey = SHA-256(ClientKey).
Pure functions: tests/unit/test_passwords.py holds them to a known answer and to a real server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Dict, List, Mapping, Optional, Sequence

SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations)
SALT_BYTES = 16
SECRET_BYTES = 32  # 43 URL-safe characters: ASCII only, so SASLprep leaves it as it is


def new_secret() -> str:
    """A strong new password (256 bits from the operating system's CSPRNG)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def scram_verifier(password: str, salt: Optional[bytes] = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores: SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>."""
    if not password.isascii() or not password.isprintable():
        raise ValueError("only printable ASCII passwords are turned into verifiers here (no SASLprep)")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


def rotation_refusal(
    roles: Sequence[str], existing: Mapping[str, Mapping[str, object]], login_user: str
) -> Optional[str]:
    """Why rotating the passwords of `roles` is refused, or None: an unknown role, the run's own login role."""
    if not roles:
        return "no role to rotate"
    if len(set(roles)) != len(roles):
        return "a role is named twice in the roles to rotate"
    unknown = sorted(name for name in roles if name not in existing)
    if unknown:
        return "no role %s on the server; no password was changed" % ", ".join(unknown)
    if login_user in roles:
        return (
            "refusing to rotate the password of %s: it is the role this run logs in with (dbops_login_user); "
            "no password was changed" % login_user
        )
    return None


def secrets_file_text(secrets_by_role: Mapping[str, str]) -> str:
    """The operator's file: one YAML mapping role -> new password (JSON strings are YAML too)."""
    return "".join(
        "%s: %s\n" % (json.dumps(role), json.dumps(secret)) for role, secret in sorted(secrets_by_role.items())
    )


def rotation_plan(roles: Sequence[str]) -> List[Dict[str, str]]:
    """What a rotation does, in the order it does it (check mode shows the same)."""
    return [{"role": role, "action": "set a new SCRAM-SHA-256 password (verifier computed here)"} for role in roles]


def vault_encrypt(plaintext: bytes, vault_password: bytes, salt: Optional[bytes] = None) -> bytes:
    """`plaintext` as an ansible-vault 1.1 (AES256) file, readable with `ansible-vault view`.

    The format of ansible.parsing.vault.VaultAES256: PBKDF2-HMAC-SHA-256 (10000 rounds, 32-byte salt)
    gives the AES key, the HMAC key and the counter; AES-256-CTR over the PKCS#7-padded text; HMAC-SHA-256
    over the ciphertext; salt, HMAC and ciphertext hex-encoded, joined, hex-encoded again, 80 per line."""
    from cryptography.hazmat.backends import default_backend
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    if not vault_password:
        raise ValueError("the vault password is empty")
    salt = secrets.token_bytes(32) if salt is None else salt
    material = hashlib.pbkdf2_hmac("sha256", vault_password, salt, 10000, 80)
    key, hmac_key, counter = material[:32], material[32:64], material[64:80]
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CTR(counter), default_backend()).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    signature = hmac.new(hmac_key, ciphertext, hashlib.sha256).hexdigest()
    body = b"\n".join((salt.hex().encode(), signature.encode(), ciphertext.hex().encode())).hex()
    lines = [body[start : start + 80] for start in range(0, len(body), 80)]
    return ("$ANSIBLE_VAULT;1.1;AES256\n" + "\n".join(lines) + "\n").encode()
