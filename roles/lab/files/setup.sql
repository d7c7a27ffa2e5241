-- penguinmails.dbops rehearsal lab: roles, tier database, extensions and the
-- application's table on a tier's primary. Idempotent: every change is guarded
-- by a check and announced with a line starting "CHANGED:".
-- Names come in as psql variables (-v), passwords from the environment
-- (\getenv), so no secret is on a command line.
\set ON_ERROR_STOP on
\set VERBOSITY terse
\set QUIET on
-- Never copy a failed statement (it may carry a password) into the server log,
-- and do not wait for standbys that may not exist yet.
SET log_min_error_statement = panic;
SET synchronous_commit = local;

\getenv admin_password LAB_ADMIN_PASSWORD
\getenv replication_password LAB_REPLICATION_PASSWORD
\getenv app_password LAB_APP_PASSWORD

-- The administrative superuser the collection's playbooks log in as.
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'admin_user') AS missing \gset
\if :missing
CREATE ROLE :"admin_user" LOGIN SUPERUSER PASSWORD :'admin_password';
\echo CHANGED: created role :admin_user
\endif
SELECT NOT (rolsuper AND rolcanlogin) AS drifted FROM pg_roles WHERE rolname = :'admin_user' \gset
\if :drifted
ALTER ROLE :"admin_user" LOGIN SUPERUSER;
\echo CHANGED: restored LOGIN SUPERUSER of :admin_user
\endif

-- The role standbys stream as.
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'replication_user') AS missing \gset
\if :missing
CREATE ROLE :"replication_user" LOGIN REPLICATION PASSWORD :'replication_password';
\echo CHANGED: created role :replication_user
\endif
SELECT NOT (rolreplication AND rolcanlogin) AS drifted FROM pg_roles WHERE rolname = :'replication_user' \gset
\if :drifted
ALTER ROLE :"replication_user" LOGIN REPLICATION;
\echo CHANGED: restored LOGIN REPLICATION of :replication_user
\endif

-- The unprivileged application role.
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app_user') AS missing \gset
\if :missing
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
\echo CHANGED: created role :app_user
\endif
SELECT NOT rolcanlogin OR rolsuper AS drifted FROM pg_roles WHERE rolname = :'app_user' \gset
\if :drifted
ALTER ROLE :"app_user" LOGIN NOSUPERUSER;
\echo CHANGED: restored LOGIN NOSUPERUSER of :app_user
\endif

-- The tier database.
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'tier_db') AS missing \gset
\if :missing
CREATE DATABASE :"tier_db";
\echo CHANGED: created database :tier_db
\endif
-- One privilege per has_*_privilege call: with a list it is true when ANY of them is held.
SELECT NOT (has_database_privilege(:'app_user', :'tier_db', 'CONNECT')
            AND has_database_privilege(:'app_user', :'tier_db', 'TEMPORARY')) AS missing \gset
\if :missing
GRANT CONNECT, TEMPORARY ON DATABASE :"tier_db" TO :"app_user";
\echo CHANGED: granted CONNECT, TEMPORARY on :tier_db to :app_user
\endif

\connect :tier_db
SET log_min_error_statement = panic;
SET synchronous_commit = local;

SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements') AS missing \gset
\if :missing
CREATE EXTENSION pg_stat_statements;
\echo CHANGED: created extension pg_stat_statements in :tier_db
\endif
SELECT NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'amcheck') AS missing \gset
\if :missing
CREATE EXTENSION amcheck;
\echo CHANGED: created extension amcheck in :tier_db
\endif

-- PUBLIC holds USAGE on public (and, since PostgreSQL 15, not CREATE): test each one.
SELECT NOT (has_schema_privilege(:'app_user', 'public', 'USAGE')
            AND has_schema_privilege(:'app_user', 'public', 'CREATE')) AS missing \gset
\if :missing
GRANT USAGE, CREATE ON SCHEMA public TO :"app_user";
\echo CHANGED: granted USAGE, CREATE on schema public to :app_user
\endif

-- The table the application (and the rehearsals) write to.
SELECT to_regclass('public.lab_writes') IS NULL AS missing \gset
\if :missing
CREATE TABLE public.lab_writes (
  id bigserial PRIMARY KEY,
  written_at timestamptz NOT NULL DEFAULT now(),
  note text
);
\echo CHANGED: created table lab_writes in :tier_db
\endif
SELECT pg_get_userbyid(relowner) <> :'app_user' AS drifted FROM pg_class WHERE oid = 'public.lab_writes'::regclass \gset
\if :drifted
ALTER TABLE public.lab_writes OWNER TO :"app_user";
\echo CHANGED: lab_writes in :tier_db now owned by :app_user
\endif
