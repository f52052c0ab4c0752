#!/usr/bin/env bash
# audit-api on this machine, release build, against its own PostgreSQL 15 cluster (port 55433,
# data in /tmp/auditapi-bench, default durability: fsync and synchronous_commit on):
#   1. 5,000,000 events over 12 monthly partitions (generated in SQL; with the event chain,
#      stored through the append function), vacuumed and analyzed; with the chain, the time
#      and peak RSS of `audit-api verify` over all of them;
#   2. search latency p50/p95 per query shape (wrk, 2 connections, 10 s each);
#   3. xlsx export of 100,000 rows: time and the server's peak RSS during it;
#   4. single-event ingest: wrk POST /create for 60 s;
#   5. batch ingest: wrk POST /create-batch (1,000 events) for 30 s, all of one company, then
#      each batch of one of 8 companies in turn;
#   6. the healthcheck under saturation: 512 connections searching for 30 s against a second
#      server with POOL_SIZE=8 (MAX_CONNECTIONS=4096), while curl asks /api/healthcheck every
#      200 ms.
# The load ends with VACUUM (ANALYZE), the state insert-triggered autovacuum (PG 13+) keeps a
# live table in: the trigram indexes' pending lists merged.
# Needs wrk (Debian package `wrk`). Removes the cluster at the end. ~6 minutes (~9 with the
# chain), ~3 GB of disk.
# AUDIT_API_BIN=path benchmarks that binary instead of building this checkout's;
# BENCH_INGEST_ONLY=1 loads, then measures only the two ingest figures; BENCH_HEALTH_ONLY=1
# loads, then measures only the healthcheck under saturation (HEALTH_BINS="path path" runs that
# part with each binary in turn, to compare builds on the same data); BENCH_CLIFF=1 loads
# BENCH_EVENTS (default 5,000,000), then measures the common-pattern searches (`SKU-00`, 10% of
# rows; `changed to 42.99`, 1%) and the rare one (`SKU-004217`) before any burst, after a burst of
# 220,000 new events that match none, and after a further 220,000 that match `SKU-00`, with each
# binary of CLIFF_BINS="path path" in turn; BENCH_SEARCH_ONLY=1 loads, then measures only search latency, with each
# binary of SEARCH_BINS="path path" in turn (the rare substring at 1, 2 and 4 connections,
# every other shape at 2 and 4).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=55433
data=/tmp/auditapi-bench
key=bench-key-0123456789abcdef
as_pg=()
[ "$(id -u)" = 0 ] && as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)

cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$data" /tmp/auditapi-bench-*.lua
}
trap cleanup EXIT

bin=${AUDIT_API_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --locked -p audit-api >/dev/null
  bin="$target/release/audit-api"
fi
rm -rf "$data" && mkdir -p "$data" && chown postgres: "$data" 2>/dev/null || true
"${as_pg[@]}" "$pgbin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$data" -l "$data/log" -w \
  -o "-p $port -k /tmp -c shared_buffers=1GB -c max_connections=100 -c max_wal_size=4GB" start >/dev/null
url="postgresql://postgres@127.0.0.1:$port/postgres"
psql() { "$pgbin/psql" -X -q -At -d "$url" "$@"; }

API_KEYS=$key DATABASE_URL="$url?sslmode=disable" POOL_SIZE=16 LOG_LEVEL=warn \
  "$bin" serve --bind 127.0.0.1:18080 >/tmp/auditapi-bench-server.log 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs http://127.0.0.1:18080/pyaudit/api/healthcheck >/dev/null && break; sleep 0.1; done
base=http://127.0.0.1:18080/pyaudit/api/audit-events

events=${BENCH_EVENTS:-5000000}
echo "== loading $events events over the last 12 months"
start=$(date +%s)
# The same rows either way. A build with the event chain (migration 0002) stores them through
# its append function, in 100 transactions of 50,000 events across the 50 companies, so that
# they are chained as the service chains them; a build without it inserts them directly.
row="now() - (i * interval '1 second' * (330 * 86400 / $events.0))"
if [ "$(psql -c "SELECT to_regproc('audit_api_append_events') IS NOT NULL")" = t ]; then
  chained=1
  for chunk in $(seq 0 $(( events / 50000 - 1 ))); do
    psql -c "
      SELECT count(*) FROM (
        SELECT array_agg(($row)::text ORDER BY i) AS ts,
               array_agg(1 + (i % 2) ORDER BY i) AS f,
               array_agg(CASE WHEN i % 2 = 0 THEN 1 + i % 4 ELSE 5 + i % 4 END ORDER BY i) AS t,
               array_agg((100 + i % 500)::bigint ORDER BY i) AS store,
               array_agg((i % 50)::bigint ORDER BY i) AS company,
               array_agg('user' || (i % 1000) ORDER BY i) AS u,
               array_agg('SKU-' || lpad((i % 100000)::text, 6, '0') || ' price changed to ' || (i % 97) || '.99' ORDER BY i) AS m,
               array_agg(CASE WHEN i % 25 = 0 THEN 'Failed' ELSE 'Success' END ORDER BY i) AS st,
               array_agg(jsonb_build_object('ip', '10.0.' || (i % 250) || '.' || (i % 200), 'n', i)::text ORDER BY i) AS d
        FROM generate_series($chunk * 50000 + 1, ($chunk + 1) * 50000) AS i) a,
      LATERAL audit_api_append_events(a.ts, a.f, a.t, a.store, a.company, a.u, a.m, a.st, a.d)" >/dev/null
  done
else
  chained=0
  psql -c "
    INSERT INTO auditevents (eventtimestamp, functionalityid, eventtypeid, storelocationid, companyid,
                             username, message, status, additionaldata)
    SELECT $row,
           1 + (i % 2), CASE WHEN i % 2 = 0 THEN 1 + i % 4 ELSE 5 + i % 4 END,
           100 + i % 500, i % 50, 'user' || (i % 1000),
           'SKU-' || lpad((i % 100000)::text, 6, '0') || ' price changed to ' || (i % 97) || '.99',
           CASE WHEN i % 25 = 0 THEN 'Failed' ELSE 'Success' END,
           jsonb_build_object('ip', '10.0.' || (i % 250) || '.' || (i % 200), 'n', i)
    FROM generate_series(1, $events) AS i;"
fi
psql -c "VACUUM (ANALYZE) auditevents"
echo "loaded in $(( $(date +%s) - start )) s (chained: $chained); partitions holding events: $(psql -c "SELECT count(DISTINCT tableoid) FROM auditevents")"

# wrk's script for GETs: the API key, and p50/p95/p99 with the request and error counts.
write_get_lua() {
  cat > /tmp/auditapi-bench-get.lua <<EOF
wrk.headers["CSIQ-APIKEY"] = "$key"
done = function(summary, latency, requests)
  io.write(string.format("    p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  (%d requests, %d errors)\n",
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
EOF
}

health_under_load() {
  local hbin
  for hbin in ${HEALTH_BINS:-$bin}; do health_under_load_of "$hbin"; done
}

health_under_load_of() {
  local hbin=$1
  echo "== healthcheck under saturation ($hbin): 512 connections searching company_id=7 for 30 s, POOL_SIZE=8"
  # MAX_CONNECTIONS above the 512 clients: every one is served (none waits in the listen
  # backlog), as in the saturation run that found the healthcheck slow.
  API_KEYS=$key DATABASE_URL="$url?sslmode=disable" POOL_SIZE=8 MAX_CONNECTIONS=4096 LOG_LEVEL=error \
    "$hbin" serve --bind 127.0.0.1:18081 >/tmp/auditapi-bench-server2.log 2>&1 &
  local server2=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:18081/pyaudit/api/healthcheck >/dev/null && break; sleep 0.1; done
  ulimit -n 8192 2>/dev/null || true
  wrk -t 2 -c 512 -d 30s --timeout 10s -s /tmp/auditapi-bench-get.lua \
    "http://127.0.0.1:18081/pyaudit/api/audit-events/search?company_id=7" > /tmp/auditapi-bench-sat.out &
  local load=$!
  sleep 3
  : > /tmp/auditapi-bench-health.txt
  for _ in $(seq 100); do
    curl -s -o /dev/null -m 10 -w '%{http_code} %{time_total}\n' http://127.0.0.1:18081/pyaudit/api/healthcheck \
      >> /tmp/auditapi-bench-health.txt || echo "000 10" >> /tmp/auditapi-bench-health.txt
    sleep 0.2
  done
  wait "$load"
  echo "  searches: $(grep -o '[0-9]* requests' /tmp/auditapi-bench-sat.out | head -1) in 30 s; $(grep p50 /tmp/auditapi-bench-sat.out | sed 's/^ *//')"
  sort -k2 -n /tmp/auditapi-bench-health.txt | awk '{c[$1]++; t[NR]=$2*1000} END {
    printf "  healthcheck during the load: %d answers, %d with 200; p50 %.1f ms, p95 %.1f ms, max %.1f ms\n",
      NR, c["200"], t[int(NR*0.5)], t[int(NR*0.95)], t[NR]}'
  kill "$server2" 2>/dev/null || true
  wait "$server2" 2>/dev/null || true
}

# The common pattern after a burst of new rows that do not match it: a plan that walks the time
# index newest-first reads the whole burst before its first match. Then the reverse: a burst of
# new rows that all match, where a plan that collects every match of the newest rows (an hour's)
# has the burst to collect. Each binary of CLIFF_BINS is served in turn on the same data.
cliff_searches() {
  local when=$1 cbin q
  echo "  $when:"
  for cbin in ${CLIFF_BINS:-$bin}; do
    API_KEYS=$key DATABASE_URL="$url?sslmode=disable" POOL_SIZE=16 LOG_LEVEL=warn \
      "$cbin" serve --bind 127.0.0.1:18083 >/tmp/auditapi-bench-server4.log 2>&1 &
    local server4=$!
    for _ in $(seq 100); do curl -fs http://127.0.0.1:18083/pyaudit/api/healthcheck >/dev/null && break; sleep 0.1; done
    for q in "message_pattern=SKU-00" "message_pattern=SKU-004217" "message_pattern=changed%20to%2042.99&page_size=100"; do
      echo "    $cbin, $q:"
      wrk -t 1 -c 1 -d 10s -s /tmp/auditapi-bench-get.lua "http://127.0.0.1:18083/pyaudit/api/audit-events/search?$q" | grep "p50"
    done
    kill "$server4" 2>/dev/null || true
    wait "$server4" 2>/dev/null || true
  done
}

# 220,000 events in the last 220 seconds, in 4 appends; $1: the SQL of each message from i.
burst() {
  local message=$1 chunk
  for chunk in 0 1 2 3; do
    psql -c "
      SELECT count(*) FROM (
        SELECT array_agg((now() - i * interval '1 millisecond')::text ORDER BY i) AS ts,
               array_agg(1 ORDER BY i) AS f, array_agg(1 ORDER BY i) AS t,
               array_agg(101::bigint ORDER BY i) AS store, array_agg((i % 50)::bigint ORDER BY i) AS company,
               array_agg('burst'::text ORDER BY i) AS u,
               array_agg($message ORDER BY i) AS m,
               array_agg('Success'::text ORDER BY i) AS st, array_agg('{}'::text ORDER BY i) AS d
        FROM generate_series($chunk * 55000 + 1, ($chunk + 1) * 55000) AS i) a,
      LATERAL audit_api_append_events(a.ts, a.f, a.t, a.store, a.company, a.u, a.m, a.st, a.d)" >/dev/null
  done
}

search_cliff() {
  echo "== common patterns (SKU-00: 10% of rows; changed to 42.99: 1%) and a rare one (SKU-004217), 1 connection, 10 s"
  cliff_searches "before any burst"
  burst "'order ' || i || ' shipped to the customer'"
  cliff_searches "after 220,000 new events that do not match"
  burst "'SKU-009' || lpad((i % 1000)::text, 3, '0') || ' price changed to 1.99'"
  cliff_searches "then after 220,000 new events that match SKU-00 (not the other two)"
}

# Search latency per query shape with one binary, served on its own port, on the loaded data.
search_latency_of() {
  local sbin=$1 c q
  API_KEYS=$key DATABASE_URL="$url?sslmode=disable" POOL_SIZE=16 LOG_LEVEL=warn \
    "$sbin" serve --bind 127.0.0.1:18082 >/tmp/auditapi-bench-server3.log 2>&1 &
  local server3=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:18082/pyaudit/api/healthcheck >/dev/null && break; sleep 0.1; done
  local sbase=http://127.0.0.1:18082/pyaudit/api/audit-events
  local month_ago month_end
  month_ago=$(date -u -d '45 days ago' +%Y-%m-%dT00:00:00Z)
  month_end=$(date -u -d '15 days ago' +%Y-%m-%dT00:00:00Z)
  echo "== search latency with $sbin (page_size 500 unless said; 10 s each)"
  for c in 1 2 4; do
    echo "  GET .../search?message_pattern=SKU-004217, $c connections"
    wrk -t 1 -c $c -d 10s -s /tmp/auditapi-bench-get.lua "$sbase/search?message_pattern=SKU-004217" | grep "p50"
  done
  for c in 2 4; do
    for q in "recent" "search" "search?company_id=7" "search?store_id=321&company_id=21" "search?user=user42" \
             "search?functionality=Authenticate&from_date=$month_ago&to_date=$month_end" \
             "search?message_pattern=changed%20to%2042.99&page_size=100" "search?message_pattern=SKU-00"; do
      echo "  GET .../$q, $c connections"
      wrk -t 1 -c $c -d 10s -s /tmp/auditapi-bench-get.lua "$sbase/$q" | grep "p50"
    done
  done
  kill "$server3" 2>/dev/null || true
  wait "$server3" 2>/dev/null || true
}

if [ -n "${BENCH_SEARCH_ONLY:-}" ]; then
  write_get_lua
  for sbin in ${SEARCH_BINS:-$bin}; do search_latency_of "$sbin"; done
  exit 0
fi

if [ -n "${BENCH_CLIFF:-}" ]; then
  write_get_lua
  search_cliff
  exit 0
fi

if [ -n "${BENCH_HEALTH_ONLY:-}" ]; then
  write_get_lua
  health_under_load
  exit 0
fi

if [ "$chained" = 1 ] && [ -z "${BENCH_INGEST_ONLY:-}" ]; then
  echo "== verifying every chain (5,000,000 events, 50 companies): audit-api verify, 3 runs"
  for run in 1 2 3; do
    /usr/bin/time -f "%e s elapsed, %M KiB peak RSS" -o /tmp/auditapi-bench-verify.time \
      env API_KEYS=$key DATABASE_URL="$url?sslmode=disable" LOG_LEVEL=warn "$bin" verify \
      | tail -1 | sed 's/^/  /'
    echo "  run $run: $(cat /tmp/auditapi-bench-verify.time)"
  done
  echo "== verifying one company's chain (100,000 events): GET /verify?company_id=7"
  curl -fs -o /dev/null -w "  %{time_total} s\n" -H "CSIQ-APIKEY: $key" \
    "http://127.0.0.1:18080/pyaudit/api/audit-events/verify?company_id=7"
fi

write_get_lua
if [ -z "${BENCH_INGEST_ONLY:-}" ]; then
month_ago=$(date -u -d '45 days ago' +%Y-%m-%dT00:00:00Z)
month_end=$(date -u -d '15 days ago' +%Y-%m-%dT00:00:00Z)
echo "== search latency (page_size 500 unless said; 2 connections, 10 s each)"
for q in "recent" \
         "search" \
         "search?company_id=7" \
         "search?store_id=321&company_id=21" \
         "search?user=user42" \
         "search?functionality=Authenticate&from_date=$month_ago&to_date=$month_end" \
         "search?message_pattern=SKU-004217" \
         "search?message_pattern=changed%20to%2042.99&page_size=100" \
         "search?company_id=7&page_number=20" ; do
  echo "  GET .../$q"
  wrk -t 1 -c 2 -d 10s -s /tmp/auditapi-bench-get.lua "$base/$q" | grep "p50"
done
echo "== the substring search alone (1 connection) and with 4 at once, and where its time goes in PostgreSQL"
wrk -t 1 -c 1 -d 10s -s /tmp/auditapi-bench-get.lua "$base/search?message_pattern=SKU-004217" | grep "p50"
wrk -t 1 -c 4 -d 10s -s /tmp/auditapi-bench-get.lua "$base/search?message_pattern=SKU-004217" | grep "p50"
# The whole pattern looked up in the trigram index, then as the service asks since issue 20:
# the rare word looked up, the whole pattern checked on the rows found.
for where in "e.message ILIKE '%SKU-004217%'" "e.message ILIKE '%004217%' AND (e.message || '') ILIKE '%SKU-004217%'"; do
  echo "  WHERE $where"
  psql -c "SET jit = off; EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON)
    SELECT e.id FROM auditevents e WHERE $where
    ORDER BY e.eventtimestamp DESC, e.id DESC LIMIT 501" \
    | grep -E "Execution Time" | sed 's/^/    /'
done
echo "== keyset vs offset, 20 pages deep (company_id=7, page_size 500)"
cursor=""
for _ in $(seq 20); do
  cursor=$(curl -fs -D - -o /dev/null -H "CSIQ-APIKEY: $key" "$base/search?company_id=7${cursor:+&cursor=$cursor}" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-next-cursor"{print $2}')
done
echo "  GET .../search?company_id=7&cursor=<page 21>"
wrk -t 1 -c 2 -d 10s -s /tmp/auditapi-bench-get.lua "$base/search?company_id=7&cursor=$cursor" | grep "p50"

echo "== xlsx export of 100,000 rows (company_id=7), 3 runs"
for run in 1 2 3; do
  echo 5 > /proc/$server/clear_refs
  rss_before=$(awk '/VmRSS/{print $2}' /proc/$server/status)
  t=$(curl -fs -H "CSIQ-APIKEY: $key" -D /tmp/auditapi-bench-export.headers -o /tmp/auditapi-bench-export.xlsx \
    -w '%{time_total}' "$base/export?company_id=7")
  hwm=$(awk '/VmHWM/{print $2}' /proc/$server/status)
  rows=$(tr -d '\r' < /tmp/auditapi-bench-export.headers | awk -F': ' 'tolower($1)=="x-export-rows"{print $2}')
  echo "  run $run: $rows rows in ${t} s, $(stat -c %s /tmp/auditapi-bench-export.xlsx) bytes; server RSS ${rss_before} KiB before, peak ${hwm} KiB during"
done
rm -f /tmp/auditapi-bench-export.xlsx /tmp/auditapi-bench-export.headers
health_under_load
fi

cat > /tmp/auditapi-bench-post.lua <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["CSIQ-APIKEY"] = "$key"
wrk.body = '{"functionality": "Authenticate", "event_type": "Login", "store_id": 101, "company_id": 5001, "user": "jdoe", "message": "User logged in successfully", "status": "Success", "additional_data": {"ip": "192.168.1.10", "browser": "Chrome"}}'
done = function(summary, latency, requests)
  io.write(string.format("    %.0f events/s  p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  (%d requests, %d non-2xx)\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, summary.requests, summary.errors.status))
end
EOF
before=$(psql -c "SELECT count(*) FROM auditevents")
echo "== single-event ingest: POST /create, 60 s, 2 threads, 32 connections"
wrk -t 2 -c 32 -d 60s -s /tmp/auditapi-bench-post.lua "$base/create" | grep "events/s"
after=$(psql -c "SELECT count(*) FROM auditevents")
echo "    stored: $((after - before)) events"

python3 - "$key" > /tmp/auditapi-bench-batch.json <<'PY'
import json, sys
print(json.dumps([{"functionality": "Price Management", "event_type": "Item updated", "store_id": 100 + i % 10,
                   "company_id": 5001, "user": "pricer%d" % (i % 5), "message": "SKU-%05d price changed" % i,
                   "status": "Success", "additional_data": {"n": i}} for i in range(1000)]))
PY
cat > /tmp/auditapi-bench-batch.lua <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["CSIQ-APIKEY"] = "$key"
local f = io.open("/tmp/auditapi-bench-batch.json") wrk.body = f:read("*a") f:close()
done = function(summary, latency, requests)
  io.write(string.format("    %.0f events/s (%.1f batches/s)  p50 %.0f ms  p95 %.0f ms  (%d non-2xx)\n",
    1000 * summary.requests / (summary.duration / 1e6), summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, summary.errors.status))
end
EOF
before=$after
echo "== batch ingest: POST /create-batch with 1,000 events, 30 s, 4 connections"
wrk -t 2 -c 4 -d 30s -s /tmp/auditapi-bench-batch.lua "$base/create-batch" | grep "events/s"
after=$(psql -c "SELECT count(*) FROM auditevents")
echo "    stored: $((after - before)) events"

# The same batches, each of one company, the requests taking 8 companies in turn: what
# several tenants sending at once get (one company's appends queue on its chain's head).
for c in 1 2 3 4 5 6 7 8; do
  sed "s/\"company_id\": 5001/\"company_id\": $((6000 + c))/g" /tmp/auditapi-bench-batch.json \
    > /tmp/auditapi-bench-batch-$c.json
done
cat > /tmp/auditapi-bench-batches.lua <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["CSIQ-APIKEY"] = "$key"
local bodies = {}
for c = 1, 8 do
  local f = io.open("/tmp/auditapi-bench-batch-" .. c .. ".json") bodies[c] = f:read("*a") f:close()
end
local n = 0
request = function()
  n = n % 8 + 1
  return wrk.format(nil, nil, nil, bodies[n])
end
done = function(summary, latency, requests)
  io.write(string.format("    %.0f events/s (%.1f batches/s)  p50 %.0f ms  p95 %.0f ms  (%d non-2xx)\n",
    1000 * summary.requests / (summary.duration / 1e6), summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, summary.errors.status))
end
EOF
before=$after
echo "== batch ingest, 8 companies in turn: POST /create-batch with 1,000 events, 30 s, 4 connections"
wrk -t 2 -c 4 -d 30s -s /tmp/auditapi-bench-batches.lua "$base/create-batch" | grep "events/s"
after=$(psql -c "SELECT count(*) FROM auditevents")
echo "    stored: $((after - before)) events"
rm -f /tmp/auditapi-bench-batch.json /tmp/auditapi-bench-batch-*.json
