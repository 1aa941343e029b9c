#!/usr/bin/env bash
# Entrypoint of shopstack/postgres:15, with the documented behaviour of the official
# postgres image's entrypoint:
#   - `docker run IMAGE -c foo=bar` means `postgres -c foo=bar`;
#   - started as root, it fixes the ownership of $PGDATA and re-executes itself as
#     user postgres (setpriv + exec: PID 1 ends up being postgres itself, so the
#     stop signal reaches the server);
#   - on an empty $PGDATA: initdb (superuser $POSTGRES_USER with $POSTGRES_PASSWORD),
#     `host all all all scram-sha-256` in pg_hba.conf, listen_addresses='*', create
#     $POSTGRES_DB, then run /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz in
#     name order against a temporary server that listens on the unix socket only;
#   - every POSTGRES_* setting can come from a file: POSTGRES_PASSWORD_FILE etc.
set -Eeo pipefail

# file_env VAR [DEFAULT]: VAR from the environment, else from the file named by
# VAR_FILE, else DEFAULT.
file_env() {
	local var="$1"
	local file_var="${var}_FILE"
	local default="${2:-}"
	if [ "${!var:-}" ] && [ "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	local value="$default"
	if [ "${!var:-}" ]; then
		value="${!var}"
	elif [ "${!file_var:-}" ]; then
		if ! value="$(< "${!file_var}")"; then
			echo >&2 "error: cannot read $file_var (${!file_var})"
			exit 1
		fi
	fi
	export "$var"="$value"
	unset "$file_var"
}

# True when the arguments only ask for help or a version (no initialisation then).
want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS=true
	fi
}

create_directories() {
	local uid
	uid="$(id -u)"
	mkdir -p "$PGDATA"
	# initdb refuses a data directory others can read.
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		if [ "$uid" = 0 ]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres '{}' +
		fi
		chmod 700 "$POSTGRES_INITDB_WALDIR"
	fi
	if [ "$uid" = 0 ]; then
		# Only what is not postgres's already: a large existing cluster stays cheap.
		find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
	fi
}

verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOM'
			error: Database is uninitialized and superuser password is not specified.
			       Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to a non-empty value
			       for the superuser, or POSTGRES_HOST_AUTH_METHOD=trust to allow every
			       connection without a password (never do that outside a laptop).
		EOM
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
		echo >&2 'warning: POSTGRES_HOST_AUTH_METHOD=trust: every connection is allowed without a password'
	fi
}

init_database_dir() {
	local initdb_args=()
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		initdb_args+=(--waldir "$POSTGRES_INITDB_WALDIR")
	fi
	# POSTGRES_INITDB_ARGS is a shell-quoted string, like upstream ("--data-checksums -E UTF8").
	eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") "${initdb_args[@]}" '"$POSTGRES_INITDB_ARGS"
}

setup_hba_conf() {
	if [ "$1" = postgres ]; then
		shift
	fi
	# PostgreSQL 15 stores scram-sha-256 verifiers; accept exactly that over the network.
	if [ -z "$POSTGRES_HOST_AUTH_METHOD" ]; then
		POSTGRES_HOST_AUTH_METHOD="$(postgres -C password_encryption "$@")"
	fi
	{
		printf '\n'
		if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
			printf '# warning: trust is enabled for all connections\n'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >> "$PGDATA/pg_hba.conf"
}

# psql as the superuser over the unix socket, stopping at the first error.
process_sql() {
	local query_runner=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "$POSTGRES_DB" ]; then
		query_runner+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST='' PGHOSTADDR='' "${query_runner[@]}" "$@"
}

temp_server_start() {
	if [ "$1" = postgres ]; then
		shift
	fi
	# Unix socket only: nothing can connect over the network before the init
	# scripts are done.
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" \
		pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

setup_db() {
	local db_exists
	db_exists="$(POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
		SELECT 1 FROM pg_database WHERE datname = :'db' ;
	EOSQL
	)"
	if [ -z "$db_exists" ]; then
		POSTGRES_DB='' process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db" ;
		EOSQL
		printf '\n'
	fi
}

process_init_files() {
	local f
	printf '\n'
	for f; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					printf '%s: running %s\n' "$0" "$f"
					"$f"
				else
					printf '%s: sourcing %s\n' "$0" "$f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql) printf '%s: running %s\n' "$0" "$f"; process_sql -f "$f"; printf '\n' ;;
			*.sql.gz) printf '%s: running %s\n' "$0" "$f"; gunzip -c "$f" | process_sql; printf '\n' ;;
			*) printf '%s: ignoring %s\n' "$0" "$f" ;;
		esac
		printf '\n'
	done
}

main() {
	if [ "${1:0:1}" = '-' ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = postgres ] && ! want_help "$@"; then
		setup_env
		create_directories
		if [ "$(id -u)" = 0 ]; then
			exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
		fi

		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			verify_minimum_env
			# Fail early (before initdb) when the scripts cannot be read.
			ls /docker-entrypoint-initdb.d/ > /dev/null
			init_database_dir
			setup_hba_conf "$@"
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			temp_server_start "$@"
			setup_db
			shopt -s nullglob
			process_init_files /docker-entrypoint-initdb.d/*
			shopt -u nullglob
			temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi

	exec "$@"
}

main "$@"
