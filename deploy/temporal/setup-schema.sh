#!/usr/bin/env bash
# Temporal's own databases on temporal-postgresql: create `temporal` and `temporal_visibility` when missing and bring
# both schemas to the version shipped in this admin-tools image. The `temporal-schema` one-shot service of
# docker-compose.yml runs it (temporalio/admin-tools) before the server starts.
#
# Safe to run again, and the way to upgrade: after moving the server and admin-tools images to a new release, the
# next `docker compose up` applies only the schema versions that are new (temporal-sql-tool keeps the version it is
# at in the database; `setup-schema -v 0.0` does nothing on a database that is already past 0.0).
set -euo pipefail

: "${POSTGRES_SEEDS:?set POSTGRES_SEEDS to the host of the Temporal PostgreSQL}"
: "${POSTGRES_USER:?set POSTGRES_USER}"
: "${SQL_PASSWORD:?set SQL_PASSWORD (temporal-sql-tool reads the password from it)}"
: "${DB_PORT:=5432}"
: "${DBNAME:=temporal}"
: "${VISIBILITY_DBNAME:=temporal_visibility}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --endpoint "$POSTGRES_SEEDS" --port "$DB_PORT" --user "$POSTGRES_USER" "$@"
}

database_exists() {
    local found
    found="$(PGPASSWORD="$SQL_PASSWORD" psql --host "$POSTGRES_SEEDS" --port "$DB_PORT" --username "$POSTGRES_USER" \
        --dbname postgres --no-align --tuples-only --command "SELECT 1 FROM pg_database WHERE datname = '$1'")"
    [[ "$found" == 1 ]]
}

# depends_on waits for the health check; this covers a database started by other means.
for _ in $(seq 60); do
    pg_isready --host "$POSTGRES_SEEDS" --port "$DB_PORT" --username "$POSTGRES_USER" --quiet && break
    echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$DB_PORT"
    sleep 2
done

for target in "$DBNAME:temporal" "$VISIBILITY_DBNAME:visibility"; do
    db="${target%%:*}"
    schema="${target##*:}"
    if database_exists "$db"; then
        echo "database $db exists"
    else
        echo "creating database $db"
        sql_tool --database "$db" create-database
    fi
    sql_tool --database "$db" setup-schema --version 0.0
    sql_tool --database "$db" update-schema --schema-dir "$SCHEMA_ROOT/$schema/versioned"
    echo "database $db is at the latest $schema schema"
done
