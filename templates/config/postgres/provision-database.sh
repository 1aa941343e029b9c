#!/bin/bash
# One database and one role for the service database $SHOPSTACK_DATABASE, with rights on
# that database only (database-per-service). shopctl runs it as a one-shot job before each
# of the service's migrations, so it is idempotent: it creates what is missing and sets
# the role's password from /run/secrets/<db>_db_password (rotating the secret rotates the
# password). Passwords never appear on a command line.
set -euo pipefail
db="${SHOPSTACK_DATABASE:?SHOPSTACK_DATABASE names the database to provision}"
for secret in /run/secrets/postgres_password "/run/secrets/${db}_db_password"; do
  if [ ! -r "$secret" ]; then
    echo "provision-database: $secret is missing; it is part of the shop's secrets/" >&2
    exit 1
  fi
done
PGPASSWORD="$(tr -d '\n' < /run/secrets/postgres_password)"
export PGPASSWORD
psql -v ON_ERROR_STOP=1 --quiet --host "${PGHOST:-postgres}" --username postgres --dbname postgres \
  -v db="$db" <<SQL
\set pw \`tr -d '\n' < /run/secrets/${db}_db_password\`
SELECT format('CREATE ROLE %I', :'db') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'db', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'db') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SQL
echo "provision-database: database and role $db are ready"
