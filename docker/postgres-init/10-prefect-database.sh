#!/bin/sh
# Prefect's own role and database on the stack's PostgreSQL (run once, when the postgres-data volume is new).
# The password comes from PREFECT_DB_PASSWORD; psql's :'var' quoting keeps any character in it safe.
# pg_trgm is created here by the superuser: Prefect's migrations use it for searching runs by name.
set -eu
: "${PREFECT_DB_PASSWORD:?set PREFECT_DB_PASSWORD}"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v prefect_password="$PREFECT_DB_PASSWORD" <<'SQL'
CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';
CREATE DATABASE prefect OWNER prefect;
\connect prefect
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
