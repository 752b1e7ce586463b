#!/bin/sh
# PostgreSQL primary, first start only (the postgres image runs /docker-entrypoint-initdb.d/*).
# SKETCH: not run by the tests (they start one embedded PostgreSQL, tests/pgserver.py).
# Passwords come from secret files, never from this script.
set -eu
repl_password=$(cat /run/secrets/pg_replication_password)
api_password=$(cat /run/secrets/pg_api_password)
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v repl="$repl_password" -v api="$api_password" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'repl';
-- Row-level security (docs/scale-out.md): the api's scoped requests connect as a non-owner.
CREATE ROLE vedette_app NOLOGIN;
CREATE ROLE vedette_api LOGIN PASSWORD :'api' IN ROLE vedette_app;
SELECT pg_create_physical_replication_slot('standby1');
SQL
# TLS only, SCRAM passwords only, from the compose network; nothing else may connect.
cat > "$PGDATA/pg_hba.conf" <<'HBA'
local   all          all                      scram-sha-256
hostssl replication  replicator  samenet      scram-sha-256
hostssl all          all         samenet      scram-sha-256
HBA
