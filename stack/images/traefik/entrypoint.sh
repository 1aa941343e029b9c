#!/bin/sh
# Entrypoint of shopstack/traefik:3.7, with the official image's behaviour:
# `docker run IMAGE --providers.docker` runs `traefik --providers.docker`, and
# `docker run IMAGE version` (any Traefik subcommand) runs `traefik version`.
set -e

# First argument is a flag: the arguments are Traefik's.
if [ "${1#-}" != "$1" ]; then
	set -- traefik "$@"
fi

# First argument is a Traefik subcommand: run it through Traefik.
if traefik "$1" --help > /dev/null 2>&1; then
	set -- traefik "$@"
else
	echo "= '$1' is not a Traefik command: assuming shell execution." 1>&2
fi

exec "$@"
