#!/bin/sh
# PostgreSQL streaming standby (SKETCH: not run by the tests).
# First start: clone the primary with pg_basebackup over TLS into an empty $PGDATA, write
# primary_conninfo (-R) with application_name=standby1, which the primary's
# synchronous_standby_names waits for; then run postgres as a hot standby.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # libpq reads the password from a password file, so it is on no command line.
  printf '%s\n' "pg-primary:5432:replication:replicator:$(cat /run/secrets/pg_replication_password)" \
    > /tmp/pgpass
  chmod 600 /tmp/pgpass
  chown postgres /tmp/pgpass
  mkdir -p "$PGDATA" && chown postgres "$PGDATA" && chmod 700 "$PGDATA"
  until gosu postgres pg_isready -h pg-primary -p 5432; do sleep 1; done
  gosu postgres env PGPASSFILE=/tmp/pgpass pg_basebackup \
    --dbname="host=pg-primary port=5432 user=replicator application_name=standby1 sslmode=verify-full sslrootcert=/run/secrets/ca.pem" \
    --pgdata="$PGDATA" --wal-method=stream --slot=standby1 --write-recovery-conf --progress
  # The recovery configuration names the password file; keep one the postgres user owns.
  install -o postgres -m 600 /tmp/pgpass "$PGDATA/../pgpass"
  echo "primary_conninfo = 'host=pg-primary port=5432 user=replicator application_name=standby1 sslmode=verify-full sslrootcert=/run/secrets/ca.pem passfile=$PGDATA/../pgpass'" \
    >> "$PGDATA/postgresql.auto.conf"
  rm -f /tmp/pgpass
fi
exec gosu postgres postgres -c hot_standby=on -c ssl=on \
  -c ssl_cert_file=/run/secrets/pg_server.pem -c ssl_key_file=/run/secrets/pg_server.key \
  -c ssl_ca_file=/run/secrets/ca.pem
