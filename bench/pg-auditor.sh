#!/usr/bin/env bash
# pg-auditor on the issue's benchmark database: 1,004 tables, ~9.1M rows (10 of 900k rows),
# audit columns and triggers on half, the versioning tables. Wall time and peak RSS of the
# whole process, three runs per count mode, release build.
#
# Usage: bench/pg-auditor.sh [DATABASE_URL]
# PG_AUDITOR_BIN=path benchmarks that binary instead of building this checkout's (to compare
# two versions side by side on the same database).
# Without a URL it builds the database with ../shared/bench/pg_bench_db.sh (PostgreSQL 15 on
# port 55432, data in /tmp/pgbench-anchor; ~45 s and several GB of disk: stop it and delete the
# folder afterwards), or reuses one already listening there.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
url=${1:-}
if [ -z "$url" ]; then
  url="postgresql://postgres@127.0.0.1:55432/postgres"
  if ! psql -X -q -At "$url" -c "SELECT 1" >/dev/null 2>&1; then
    script=../shared/bench/pg_bench_db.sh
    [ -x "$script" ] || script=$(realpath ../shared/bench/pg_bench_db.sh 2>/dev/null || true)
    [ -f "$script" ] || { echo "pass a DATABASE_URL, or provide ../shared/bench/pg_bench_db.sh" >&2; exit 2; }
    url=$(bash "$script" 55432 /tmp/pgbench-anchor | tail -1)
  fi
fi
bin=${PG_AUDITOR_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -p pg-auditor >/dev/null
  bin="$target/release/pg-auditor"
fi
echo "database: $(psql -X -q -At "$url" -c "SELECT count(*) || ' tables, ' || sum(reltuples)::bigint || ' rows (estimated)' FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")"
for mode in auto exact; do
  for run in 1 2 3; do
    out=$(mktemp -d)
    /usr/bin/time -f "$mode run $run: %e s wall, %M KiB peak RSS" \
      "$bin" --database-url "$url?sslmode=disable" --out "$out" --count-mode "$mode" 2>&1 >/dev/null \
      | grep -E "wall|error|warning" || true
    rm -rf "$out"
  done
done
