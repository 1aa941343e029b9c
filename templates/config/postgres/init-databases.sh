#!/bin/bash
# Runs once, on an empty data directory: one database and one role per service, each
# role with rights on its own database only (database-per-service).
# SHOPSTACK_DATABASES lists the databases; each role's password is the secret
# /run/secrets/<db>_db_password.
set -euo pipefail
for db in ${SHOPSTACK_DATABASES:-}; do
  password_file="/run/secrets/${db}_db_password"
  if [ ! -r "$password_file" ]; then
    echo "init-databases: $password_file is missing; cannot create role $db" >&2
    exit 1
  fi
  password="$(tr -d '\n' < "$password_file")"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    -v db="$db" -v pw="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'db', :'pw') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'db') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SQL
  echo "init-databases: created database and role $db"
done
