#!/usr/bin/env bash
# pg-auditor's HTML page at 10,000 tables: how long the reports take to render, how big the
# page is, and how long a real browser (Debian's chromium, headless) takes to load it and
# apply the filter. The database is made on the devstack-style throwaway cluster this script
# starts (PostgreSQL 15 binaries, port 55433, data in a temporary folder, removed at exit;
# as the postgres user when run as root):
# TABLES tables (default 10,000) with audit columns, a third with rows, an index and a
# foreign key on every tenth, a trigger on every twentieth.
#
# Usage: bench/pg-auditor-html.sh        TABLES=20000 bench/pg-auditor-html.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
tables=${TABLES:-10000}
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
# PostgreSQL refuses to run as root: then it runs as the postgres user.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
dir=$(mktemp -d /tmp/pg-html-bench-XXXXXX)
chmod 777 "$dir"
trap 'as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
as_pg "$bindir/pg_ctl" -D "$dir/data" -o "-p 55433 -k $dir -c listen_addresses=127.0.0.1 -c max_locks_per_transaction=256" \
  -l "$dir/log" -w start >/dev/null
url="postgresql://postgres@127.0.0.1:55433/postgres"
psql -X -q "$url" <<SQL >/dev/null
CREATE TABLE developer (id serial PRIMARY KEY, email text, display_name text, created_by int);
INSERT INTO developer (email, display_name) VALUES ('system@example.org', 'System'), ('ana@example.org', 'Ana');
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN RETURN NEW; END \$\$;
SELECT format('CREATE TABLE t_%s (id int PRIMARY KEY, ref int, created_by int, created_at timestamptz, updated_by int, updated_at timestamptz)', g)
FROM generate_series(1, $tables) g \gexec
SELECT format('INSERT INTO t_%s SELECT i, NULL, 1 + i %% 2, now(), NULL, NULL FROM generate_series(1, %s) i', g, g % 500)
FROM generate_series(1, $tables) g WHERE g % 3 = 0 \gexec
SELECT format('CREATE INDEX ON t_%s (created_by); ALTER TABLE t_%s ADD FOREIGN KEY (ref) REFERENCES t_%s (id)', g, g, greatest(g - 1, 1))
FROM generate_series(10, $tables, 10) g \gexec
SELECT format('CREATE TRIGGER t_%s_touch BEFORE UPDATE ON t_%s FOR EACH ROW EXECUTE FUNCTION touch()', g, g)
FROM generate_series(20, $tables, 20) g \gexec
ANALYZE;
SQL
cargo build --release --locked -q -p pg-auditor
out=$(mktemp -d)
echo "database: $tables tables"
/usr/bin/time -f "audit: %e s wall, %M KiB peak RSS" \
  "$target/release/pg-auditor" --database-url "$url?sslmode=disable" --out "$out" 2>&1 \
  | grep -E "rendered|wall|error" || true
page=$(ls "$out"/*.html)
echo "html: $(stat -c %s "$page") bytes, $(gzip -c "$page" | wc -c) gzipped"
for run in 1 2 3; do
  start=$(date +%s.%N)
  chromium --headless --no-sandbox --disable-gpu --dump-dom "file://$page#filter=t_77" > "$out/dom.html" 2>/dev/null
  end=$(date +%s.%N)
  shown=$(grep -o '<span id="shown">[0-9,]*' "$out/dom.html" | grep -o '[0-9,]*$')
  ready=$(grep -c 'data-ready="1"' "$out/dom.html" || true)
  echo "chromium run $run: load, script and filter: $(echo "$end - $start" | bc) s (process start included); filter kept $shown rows; script finished: $ready"
done
start=$(date +%s.%N)
chromium --headless --no-sandbox --disable-gpu --dump-dom "about:blank" >/dev/null 2>&1
end=$(date +%s.%N)
echo "chromium on about:blank (the process alone): $(echo "$end - $start" | bc) s"
rm -rf "$out"
