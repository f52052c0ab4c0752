#!/usr/bin/env bash
# audit-api's monthly archive to S3 at 2,000,000 events: wall time and peak RSS of
# `audit-api maintain` retiring one month (chained events, stored through the append
# function) into a bucket on the moto server, for each binary given (default: this checkout's
# release build), each on its own copy of the same database.
#
# Usage: bench/audit-api-archive.sh [BIN ...]     EVENTS=2000000 (default)
# Starts PostgreSQL 15 on port 55434 (data in /tmp/auditapi-archive-bench, as the postgres
# user when run as root) and moto on port 55435 (from the dev venv, `make setup`); removes both.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
events=${EVENTS:-2000000}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=55434
data=/tmp/auditapi-archive-bench
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
venv=${AUDITKIT_VENV:-$PWD/.venv}
[ -x "$venv/bin/moto_server" ] || bash crates/devstack/setup.sh

cleanup() {
  [ -n "${moto:-}" ] && kill "$moto" 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$data"
}
trap cleanup EXIT

bins=("$@")
if [ ${#bins[@]} -eq 0 ]; then
  cargo build --release --locked -q -p audit-api
  bins=("$target/release/audit-api")
fi
rm -rf "$data" && mkdir -p "$data" && chown postgres: "$data" 2>/dev/null || true
"${as_pg[@]}" "$pgbin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -l "$data/log" -w \
  -o "-p $port -k /tmp -c shared_buffers=512MB -c max_wal_size=4GB" start >/dev/null
psql() { "$pgbin/psql" -X -q -At -d "postgresql://postgres@127.0.0.1:$port/$1" -c "$2"; }
"$venv/bin/moto_server" -H 127.0.0.1 -p 55435 >/dev/null 2>&1 &
moto=$!
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL=http://127.0.0.1:55435
for _ in $(seq 100); do curl -fs "$AWS_ENDPOINT_URL/moto-api/" >/dev/null && break; sleep 0.2; done
"$venv/bin/aws" s3 mb s3://archive-bench >/dev/null

psql postgres "CREATE DATABASE template_events"
url="postgresql://postgres@127.0.0.1:$port/template_events?sslmode=disable"
# The schema and this month's partitions, then the month three months back.
API_KEYS=bench-key-0123456789abcdef DATABASE_URL="$url" LOG_LEVEL=warn "${bins[0]}" migrate >/dev/null
month=$(date -u -d "$(date -u +%Y-%m-01) -3 months" +%Y-%m-01)
next=$(date -u -d "$month +1 month" +%Y-%m-01)
name=auditevents_$(date -u -d "$month" +%Y%m)
psql template_events "CREATE TABLE IF NOT EXISTS $name PARTITION OF auditevents FOR VALUES FROM ('$month') TO ('$next')"
echo "== loading $events events into $name"
start=$(date +%s)
chunk=50000
for c in $(seq 0 $(( (events + chunk - 1) / chunk - 1 ))); do
  psql template_events "
    SELECT count(*) FROM (
      SELECT array_agg((timestamptz '$month' + i * interval '1 second')::text ORDER BY i) AS ts,
             array_agg(1 + (i % 2) ORDER BY i) AS f,
             array_agg(CASE WHEN i % 2 = 0 THEN 1 + i % 4 ELSE 5 + i % 4 END ORDER BY i) AS t,
             array_agg((100 + i % 500)::bigint ORDER BY i) AS store,
             array_agg((i % 50)::bigint ORDER BY i) AS company,
             array_agg('user' || (i % 1000) ORDER BY i) AS u,
             array_agg('SKU-' || lpad((i % 100000)::text, 6, '0') || ' price changed to ' || (i % 97) || '.99' ORDER BY i) AS m,
             array_agg(CASE WHEN i % 25 = 0 THEN 'Failed' ELSE 'Success' END ORDER BY i) AS st,
             array_agg(jsonb_build_object('ip', '10.0.' || (i % 250) || '.' || (i % 200), 'n', i)::text ORDER BY i) AS d
      FROM generate_series($c * $chunk + 1, least(($c + 1) * $chunk, $events)) AS i) a,
    LATERAL audit_api_append_events(a.ts, a.f, a.t, a.store, a.company, a.u, a.m, a.st, a.d)" >/dev/null
done
echo "loaded in $(( $(date +%s) - start )) s: $(psql template_events "SELECT count(*) FROM $name") events"

n=0
for bin in "${bins[@]}"; do
  n=$((n + 1))
  db=archive_run_$n
  psql postgres "CREATE DATABASE $db TEMPLATE template_events"
  /usr/bin/time -f "%e s wall, %M KiB peak RSS" -o /tmp/auditapi-archive-bench.time \
    env API_KEYS=bench-key-0123456789abcdef DATABASE_URL="postgresql://postgres@127.0.0.1:$port/$db?sslmode=disable" \
      RETENTION_MONTHS=2 ARCHIVE_BUCKET=archive-bench ARCHIVE_PREFIX="run-$n/" LOG_LEVEL=warn \
      "$bin" maintain > /tmp/auditapi-archive-bench.report
  object=$("$venv/bin/aws" s3 ls "s3://archive-bench/run-$n/$name.jsonl.gz" | awk '{print $4 ", " $3 " bytes"}')
  echo "$bin: $(cat /tmp/auditapi-archive-bench.time); archived: $object"
done
