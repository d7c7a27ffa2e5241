"""The rehearsal's leak: COUNT sessions through PgBouncer left idle in transaction for at most SECONDS.

    leak.py PORT DATABASE USER COUNT SECONDS   (the password in PGPASSWORD)

Each session runs one statement in an open transaction and then does nothing, as an application
that forgot to commit; it stops by itself after SECONDS, or when its server connection is terminated.
"""

import os
import sys
import time

import psycopg2


def main():
    port, database, user, count, seconds = sys.argv[1:6]
    sessions = []
    while len(sessions) < int(count):
        conn = psycopg2.connect(
            host="127.0.0.1",
            port=int(port),
            dbname=database,
            user=user,
            password=os.environ.get("PGPASSWORD", ""),
            application_name="molecule-leak",
            connect_timeout=5,
        )
        conn.cursor().execute("SELECT 1")  # psycopg2 opened a transaction: now idle in it
        sessions.append(conn)
    time.sleep(float(seconds))
    for conn in sessions:
        conn.close()


if __name__ == "__main__":
    main()
