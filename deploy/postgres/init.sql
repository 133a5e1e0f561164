-- One database and one role per service: catalog, monitoring, notifications. No service can
-- read another service's tables (DESIGN: each service owns its data).
--
-- docker compose mounts this file in /docker-entrypoint-initdb.d, so it runs once, when the
-- postgres container initialises an empty data directory, as the POSTGRES_USER. It is
-- idempotent: run it again by hand to add what is missing (for example after upgrading from a
-- compose file that created the catalog only):
--   docker compose exec -T postgres psql -U postgres -f /docker-entrypoint-initdb.d/10-upr-databases.sql
-- It never changes an existing role's password (use ALTER ROLE for that).
--
-- The passwords come from the environment of the psql process (psql's \getenv, PostgreSQL 15
-- or later): CATALOG_DB_PASSWORD, MONITORING_DB_PASSWORD, NOTIFICATIONS_DB_PASSWORD. Use
-- URL-safe characters: the same passwords go into the UPR_*_DATABASE_URL settings.

\set ON_ERROR_STOP on

\getenv catalog_password CATALOG_DB_PASSWORD
\getenv monitoring_password MONITORING_DB_PASSWORD
\getenv notifications_password NOTIFICATIONS_DB_PASSWORD

\if :{?catalog_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'CATALOG_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?monitoring_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'MONITORING_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?notifications_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'NOTIFICATIONS_DB_PASSWORD is not set in the postgres container'; END $$;
\endif

-- catalog
SELECT format('CREATE ROLE catalog LOGIN PASSWORD %L', :'catalog_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'catalog') \gexec
SELECT 'CREATE DATABASE catalog OWNER catalog'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'catalog') \gexec
REVOKE ALL ON DATABASE catalog FROM PUBLIC;

-- monitoring
SELECT format('CREATE ROLE monitoring LOGIN PASSWORD %L', :'monitoring_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'monitoring') \gexec
SELECT 'CREATE DATABASE monitoring OWNER monitoring'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'monitoring') \gexec
REVOKE ALL ON DATABASE monitoring FROM PUBLIC;

-- notifications (personal data: names, e-mail addresses, phone numbers)
SELECT format('CREATE ROLE notifications LOGIN PASSWORD %L', :'notifications_password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'notifications') \gexec
SELECT 'CREATE DATABASE notifications OWNER notifications'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'notifications') \gexec
REVOKE ALL ON DATABASE notifications FROM PUBLIC;
