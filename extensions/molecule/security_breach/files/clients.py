"""The rehearsal's clients (the password in PGPASSWORD).

clients.py hold PORT DATABASE USER SECONDS        one session, a query every 0.2 s, stops at its first error
clients.py work PORT DATABASE USER SECONDS FILE   the innocent application: a query every 0.05 s on one
                                                  session for SECONDS; writes {"queries": n, "errors": [...]}
clients.py login PORT DATABASE USER               prints "ok" or "refused: <first line of the error>"
"""

import json
import os
import sys
import time

import psycopg2


def connect(port, database, user):
    return psycopg2.connect(
        host="127.0.0.1",
        port=int(port),
        dbname=database,
        user=user,
        password=os.environ.get("PGPASSWORD", ""),
        application_name="molecule-security",
        connect_timeout=5,
    )


def hold(port, database, user, seconds):
    conn = connect(port, database, user)
    conn.autocommit = True
    deadline = time.monotonic() + float(seconds)
    try:
        while time.monotonic() < deadline:
            conn.cursor().execute("SELECT 1")
            time.sleep(0.2)
    except psycopg2.Error:
        pass


def idle(port, database, user, seconds):
    conn = connect(port, database, user)
    time.sleep(float(seconds))
    conn.close()


def work(port, database, user, seconds, path):
    queries, errors = 0, []
    conn = connect(port, database, user)
    conn.autocommit = True
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT count(*) FROM pg_class")
            cursor.fetchone()
            queries += 1
        except psycopg2.Error as error:
            errors.append(str(error).splitlines()[0] if str(error) else repr(error))
            if conn.closed:
                break
        time.sleep(0.05)
        with open(path + ".tmp", "w") as handle:
            json.dump({"queries": queries, "errors": errors}, handle)
        os.replace(path + ".tmp", path)


def login(port, database, user):
    try:
        connect(port, database, user).close()
        print("ok")
    except psycopg2.Error as error:
        print("refused: %s" % (str(error).strip().splitlines() or ["?"])[0])


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    {"hold": hold, "idle": idle, "work": work, "login": login}[mode](*args)
