#!/usr/bin/env bash
# Design measurements for the audit-api hash chain (issue 18), before the service changes:
# pgbench against a throwaway PostgreSQL 15 (synchronous_commit on, fsync on), 15 s each.
#   plain single inserts (today's POST /create shape)     vs  chained appends, one company
#   chained appends over 50 companies                     vs  advisory lock instead of row lock
#   8 concurrent creates grouped into one transaction     vs  1,000-event batches, plain / chained
# usage: bench/chain-append/run.sh        (needs the PostgreSQL 15 binaries; run as root or postgres)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin=/usr/lib/postgresql/15/bin
work="$(mktemp -d /tmp/auditkit-chain-append-XXXXXX)"
port=55433
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"
cleanup() { as_pg "$bin/pg_ctl -D $work/data stop -m fast" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
as_pg "$bin/initdb -D $work/data -A trust -U postgres >/dev/null"
as_pg "$bin/pg_ctl -D $work/data -o '-p $port -k $work -c shared_buffers=512MB -c max_connections=100' -l $work/pg.log start >/dev/null"
sleep 2
psql=("$bin/psql" -h "$work" -p "$port" -U postgres -q)
pgbench=("$bin/pgbench" -h "$work" -p "$port" -U postgres -n -T 15 -j 2)
"${psql[@]}" -f "$here/schema.sql" postgres
data='{"ip": "192.168.1.10", "browser": "Chrome"}'
cat > "$work/plain.sql" <<SQL
INSERT INTO ev (ts, company, username, message, status, data) VALUES (now(), 5001, 'jdoe', 'User logged in successfully', 'Success', '$data');
SQL
echo "SELECT append(now(), 5001, 'jdoe', 'User logged in successfully', 'Success', '$data');" > "$work/row.sql"
echo "SELECT append_adv(now(), 5001, 'jdoe', 'User logged in successfully', 'Success', '$data');" > "$work/adv.sql"
printf '\\set c random(1, 50)\nSELECT append(now(), :c, %s);\n' "'jdoe', 'User logged in successfully', 'Success', '$data'" > "$work/many.sql"
echo "SELECT append_many(5001, 8);" > "$work/group8.sql"
echo "SELECT append_set(5001, 1000);" > "$work/set1000.sql"
cat > "$work/plain1000.sql" <<SQL
INSERT INTO ev (ts, company, username, message, status, data) SELECT now(), 5001, 'jdoe', 'User logged in successfully', 'Success', '$data'::jsonb FROM generate_series(1, 1000);
SQL
run() { # label, clients, script, events per transaction
  local tps; tps=$("${pgbench[@]}" -c "$2" -f "$work/$3" postgres 2>&1 | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
  printf '%-58s %8.0f transactions/s  %8.0f events/s\n' "$1" "$tps" "$(echo "$tps * $4" | bc)"
}
run "plain single insert, 32 clients"                       32 plain.sql 1
run "chained, one company, row lock, 32 clients"            32 row.sql 1
run "chained, one company, advisory lock, 32 clients"       32 adv.sql 1
run "chained, one company, advisory lock, 8 clients"        8 adv.sql 1
run "chained, 50 companies, row lock, 32 clients"           32 many.sql 1
run "chained, one company, 8 creates per transaction, 8 cl." 8 group8.sql 8
run "plain 1,000-event batch, 4 clients"                    4 plain1000.sql 1000
run "chained 1,000-event batch, one company, 4 clients"     4 set1000.sql 1000
