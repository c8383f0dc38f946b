#!/usr/bin/env bash
# Run once by the postgres image, when it initialises an empty data volume (docker-compose.yml mounts this file
# into /docker-entrypoint-initdb.d/). A database per service, each owned by its own login role, and no CONNECT
# for anyone else: no service can read another's tables.
# The passwords come from the environment (INTAKE_DB_PASSWORD, ADVOCACY_DB_PASSWORD, NOTIFICATIONS_DB_PASSWORD:
# deploy/compose/dev.env for the dev stack, your own for a deployment). Changing one later is
# `ALTER ROLE <role> PASSWORD '...'`: this script never runs again on a volume that holds data.
# A further charity's advocacy instance gets its own pair, e.g. advocacy_<provider>.
set -euo pipefail

for var in INTAKE_DB_PASSWORD ADVOCACY_DB_PASSWORD NOTIFICATIONS_DB_PASSWORD; do
  if [[ -z ${!var:-} ]]; then
    echo "init.sh: $var is not set: give the postgres service its password (docker-compose.yml)" >&2
    exit 1
  fi
done

# psql quotes each password (:'name'), so no value can end the string early.
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
  -v intake_password="$INTAKE_DB_PASSWORD" \
  -v advocacy_password="$ADVOCACY_DB_PASSWORD" \
  -v notifications_password="$NOTIFICATIONS_DB_PASSWORD" <<'SQL'
CREATE ROLE intake LOGIN PASSWORD :'intake_password';
CREATE DATABASE intake OWNER intake;
REVOKE ALL ON DATABASE intake FROM PUBLIC;

CREATE ROLE advocacy_demo LOGIN PASSWORD :'advocacy_password';
CREATE DATABASE advocacy_demo OWNER advocacy_demo;
REVOKE ALL ON DATABASE advocacy_demo FROM PUBLIC;

CREATE ROLE notifications LOGIN PASSWORD :'notifications_password';
CREATE DATABASE notifications OWNER notifications;
REVOKE ALL ON DATABASE notifications FROM PUBLIC;
SQL
