#!/bin/sh
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ "${1:-postgres}" = postgres ]; then
	shift || true
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		[ -n "${POSTGRES_PASSWORD:-}" ] || { echo "POSTGRES_PASSWORD is required" >&2; exit 1; }
		pw=$(mktemp)
		printf '%s\n' "$POSTGRES_PASSWORD" >"$pw"
		initdb -U "$POSTGRES_USER" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 >/dev/null
		rm -f "$pw"
		echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
		# A temporary server on the socket only, as the official image does.
		pg_ctl -w -o "-c listen_addresses=''" start
		if [ "$POSTGRES_DB" != postgres ]; then
			psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
		fi
		pg_ctl -w -m fast stop
	fi
	exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
