-- Runs once, when the postgres container initialises an empty data directory
-- (every file in /docker-entrypoint-initdb.d is run by psql as the POSTGRES_USER).
-- Creates the catalog service's own role and database: one database per service,
-- and no service reads another service's tables.
--
-- The password is read from CATALOG_DB_PASSWORD in the postgres container's environment
-- (psql's \getenv, PostgreSQL 15 or later). Use URL-safe characters: the same password
-- goes into UPR_CATALOG_DATABASE_URL.

\set ON_ERROR_STOP on
\getenv catalog_password CATALOG_DB_PASSWORD

\if :{?catalog_password}
\else
DO $$ BEGIN RAISE EXCEPTION 'CATALOG_DB_PASSWORD is not set in the postgres container'; END $$;
\endif

CREATE ROLE catalog LOGIN PASSWORD :'catalog_password';
CREATE DATABASE catalog OWNER catalog;
REVOKE ALL ON DATABASE catalog FROM PUBLIC;
