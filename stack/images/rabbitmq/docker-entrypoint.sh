#!/usr/bin/env bash
# Entrypoint of shopstack/rabbitmq:3.10:
#   - `docker run IMAGE -some-flag` means `rabbitmq-server -some-flag`;
#   - RABBITMQ_DEFAULT_USER, RABBITMQ_DEFAULT_PASS (or RABBITMQ_DEFAULT_PASS_FILE,
#     RABBITMQ_DEFAULT_USER_FILE) and RABBITMQ_DEFAULT_VHOST become default_user,
#     default_pass and default_vhost in /etc/rabbitmq/conf.d/90-default-user.conf
#     (they only matter on the first start, when the node creates its database);
#   - started as root, it fixes the ownership of the data and log directories and
#     re-executes itself as user rabbitmq (setpriv + exec: no process in between).
set -Eeo pipefail

# file_env VAR: VAR from the environment, else from the file named by VAR_FILE.
file_env() {
	local var="$1"
	local file_var="${var}_FILE"
	if [ "${!var:-}" ] && [ "${!file_var:-}" ]; then
		echo >&2 "error: both $var and $file_var are set (but are exclusive)"
		exit 1
	fi
	if [ "${!file_var:-}" ]; then
		local value
		if ! value="$(< "${!file_var}")"; then
			echo >&2 "error: cannot read $file_var (${!file_var})"
			exit 1
		fi
		export "$var"="$value"
	fi
	unset "$file_var"
}

# A value for rabbitmq.conf: one line, and no '#' (the format has no quoting).
conf_value() {
	local name="$1" value="$2"
	case "$value" in
		*$'\n'* | *'#'*)
			echo >&2 "error: $name must be one line without '#': rabbitmq.conf cannot hold it"
			exit 1
			;;
	esac
	printf '%s' "$value"
}

write_default_user() {
	local conf=/etc/rabbitmq/conf.d/90-default-user.conf
	file_env RABBITMQ_DEFAULT_USER
	file_env RABBITMQ_DEFAULT_PASS
	if [ -z "${RABBITMQ_DEFAULT_USER:-}${RABBITMQ_DEFAULT_PASS:-}${RABBITMQ_DEFAULT_VHOST:-}" ]; then
		rm -f "$conf" 2> /dev/null || :
		return
	fi
	local user pass vhost
	user="$(conf_value RABBITMQ_DEFAULT_USER "${RABBITMQ_DEFAULT_USER:-}")"
	pass="$(conf_value RABBITMQ_DEFAULT_PASS "${RABBITMQ_DEFAULT_PASS:-}")"
	vhost="$(conf_value RABBITMQ_DEFAULT_VHOST "${RABBITMQ_DEFAULT_VHOST:-}")"
	{
		echo '# Written by docker-entrypoint.sh from RABBITMQ_DEFAULT_* at container start.'
		if [ -n "$user" ]; then echo "default_user = $user"; fi
		if [ -n "$pass" ]; then echo "default_pass = $pass"; fi
		if [ -n "$vhost" ]; then echo "default_vhost = $vhost"; fi
	} > "$conf.tmp"
	chmod 0640 "$conf.tmp"
	mv "$conf.tmp" "$conf"
	if [ "$(id -u)" = 0 ]; then
		chown rabbitmq:rabbitmq "$conf"
	fi
	# The server must not see the secrets in its environment as well.
	unset RABBITMQ_DEFAULT_PASS
}

main() {
	if [ "${1:0:1}" = '-' ]; then
		set -- rabbitmq-server "$@"
	fi

	if [ "$1" = rabbitmq-server ]; then
		# Set only across our own re-execution below: the conf file is written once.
		if [ -z "${_SHOPSTACK_DROPPED_ROOT:-}" ]; then
			write_default_user
		fi
		unset _SHOPSTACK_DROPPED_ROOT
		if [ "$(id -u)" = 0 ]; then
			find /var/lib/rabbitmq /var/log/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
			export _SHOPSTACK_DROPPED_ROOT=1
			exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "${BASH_SOURCE[0]}" "$@"
		fi
		# The Erlang cookie must be readable by its owner only.
		if [ -e "$HOME/.erlang.cookie" ]; then
			chmod 0400 "$HOME/.erlang.cookie" 2> /dev/null || :
		fi
	fi

	exec "$@"
}

main "$@"
