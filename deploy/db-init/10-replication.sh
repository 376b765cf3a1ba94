#!/bin/sh
# Runs once, when the primary's data directory is created (docker-entrypoint-initdb.d):
# lets the read replica stream WAL (replication connections are not matched by "all").
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "${PGDATA}/pg_hba.conf"
