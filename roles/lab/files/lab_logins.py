# Copyright: (c) 2026, PenguinMails Database Operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Try logins against one PostgreSQL server of the penguinmails.dbops rehearsal lab.

    lab_logins.py HOST PORT USER=ENV_VAR [USER=ENV_VAR ...]

Each password is read from the named environment variable, never from the
command line. Prints one JSON object mapping each user to "ok", "password"
(the server rejected the password) or the first line of any other error.
"""

from __future__ import annotations

import json
import os
import sys

import psycopg2

CONNECT_TIMEOUT = 5


def try_login(host, port, user, password):
    try:
        conn = psycopg2.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            dbname="postgres",
            connect_timeout=CONNECT_TIMEOUT,
            application_name="penguinmails-dbops-lab",
        )
    except psycopg2.OperationalError as error:
        text = str(error).strip()
        if "password authentication failed" in text:
            return "password"
        return text.splitlines()[0] if text else error.__class__.__name__
    conn.close()
    return "ok"


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    host, port = argv[0], int(argv[1])
    outcome = {}
    for pair in argv[2:]:
        user, _sep, env_var = pair.partition("=")
        outcome[user] = try_login(host, port, user, os.environ.get(env_var, ""))
    sys.stdout.write(json.dumps(outcome, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
