#!/usr/bin/env bash
# pg-auditor at 100,000 tables: the benchmark database for issue 20's target (`auto` mode
# <= 20 s, peak RSS <= 64 MiB). TABLES small tables (default 100,000) across SCHEMAS schemas
# (default 50): audit columns on every table, 3 rows in every FILLED_EVERY-th (default tenth;
# the others are empty), an index on every twentieth, plus the four versioning tables. Then
# three runs of the release pg-auditor in `auto` mode to a folder: wall time and peak RSS.
#
# Usage: bench/pg-auditor-100k.sh        TABLES=20000 SCHEMAS=10 bench/pg-auditor-100k.sh
#        FILLED_EVERY=1 bench/pg-auditor-100k.sh  (no empty table: every table is read)
#        PG_AUDITOR_BINS="old new" bench/pg-auditor-100k.sh  (builds side by side on one database)
# Starts PostgreSQL 15 on port 55436 (data in a temporary folder, as the postgres user when run
# as root; max_locks_per_transaction raised: one snapshot reads every table's catalog rows).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
tables=${TABLES:-100000}
schemas=${SCHEMAS:-50}
per_schema=$(( (tables + schemas - 1) / schemas ))
filled_every=${FILLED_EVERY:-10}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d /tmp/pg-100k-bench-XXXXXX)
chmod 777 "$dir"
trap 'as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
as_pg "$bindir/pg_ctl" -D "$dir/data" -o "-p 55436 -k $dir -c listen_addresses=127.0.0.1 \
  -c max_locks_per_transaction=1024 -c shared_buffers=512MB -c fsync=off" -l "$dir/log" -w start >/dev/null
url="postgresql://postgres@127.0.0.1:55436/postgres"
start=$(date +%s)
psql -X -q "$url" <<SQL >/dev/null
CREATE TABLE developer (id serial PRIMARY KEY, email text, display_name text, created_at timestamptz DEFAULT now(), updated_at timestamptz, created_by int, updated_by int);
INSERT INTO developer (email, display_name) VALUES ('system@example.org', 'System');
CREATE TABLE version_family (id serial PRIMARY KEY, short_code text, label text, is_active boolean DEFAULT true, created_by int);
CREATE TABLE version (id serial PRIMARY KEY, version_family_id int, version_number text, is_active boolean, created_by int);
CREATE TABLE domain_family_map (schema_name text, table_name text, version_family_id int, created_by int, PRIMARY KEY (schema_name, table_name));
SELECT format('CREATE SCHEMA s%s', s) FROM generate_series(1, $schemas) s \gexec
SELECT format('CREATE TABLE s%s.t_%s (id int PRIMARY KEY, name text, created_by int, created_at timestamptz DEFAULT now(), updated_by int, updated_at timestamptz)', s, t)
FROM generate_series(1, $schemas) s, generate_series(1, $per_schema) t \gexec
SELECT format('INSERT INTO s%s.t_%s (id, name, created_by) VALUES (1, ''a'', 1), (2, ''b'', 2), (3, ''c'', 1)', s, t)
FROM generate_series(1, $schemas) s, generate_series($filled_every, $per_schema, $filled_every) t \gexec
SELECT format('CREATE INDEX ON s%s.t_%s (created_by)', s, t)
FROM generate_series(1, $schemas) s, generate_series(20, $per_schema, 20) t \gexec
ANALYZE;
SQL
echo "database: $(psql -X -At "$url" -c "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')") tables in $schemas schemas, made in $(( $(date +%s) - start )) s"
bins=${PG_AUDITOR_BINS:-}
if [ -z "$bins" ]; then
  cargo build --release --locked -q -p pg-auditor
  bins="$target/release/pg-auditor"
fi
for bin in $bins; do
  echo "== $bin"
  for run in 1 2 3; do
    out=$(mktemp -d)
    /usr/bin/time -f "auto run $run: %e s wall, %M KiB peak RSS" \
      "$bin" --database-url "$url?sslmode=disable" --out "$out" --count-mode auto 2>&1 \
      | grep -E "wall|rendered|error" || true
    rm -rf "$out"
  done
done
