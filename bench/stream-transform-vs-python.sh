#!/usr/bin/env bash
# stream-to-firehose's transform side by side with the Python anchor, in the same minutes:
# ../shared/bench/py_stream_transform.py (boto3's TypeDeserializer turning MODIFY records with
# both images into JSON lines with a diff; boto3 comes with moto in the dev venv) three times,
# then `cargo bench --bench transform`, which also reads the anchor's own event (the same
# bytes, written out here) so the ratio compares the same records.
#
# Usage: bench/stream-transform-vs-python.sh   (make bench-transform runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
anchor=../shared/bench/py_stream_transform.py
python=${AUDITKIT_VENV:-$PWD/.venv}/bin/python
if [ ! -f "$anchor" ]; then
  echo "no $anchor here: running the Rust bench alone" >&2
  exec cargo bench --locked -p stream-to-firehose --bench transform
fi
event=$(mktemp --suffix=.json)
trap 'rm -f "$event"' EXIT

# The anchor's event, as its script builds it (everything before it starts timing).
"$python" - "$anchor" "$event" <<'PYEOF'
import sys
source = open(sys.argv[1]).read()
setup, _, _ = source.partition("des = TypeDeserializer()")
scope = {}
exec(compile(setup, sys.argv[1], "exec"), scope)
open(sys.argv[2], "wb").write(scope["payload"])
PYEOF

echo "== Python anchor ($anchor), three runs"
rates=()
for _ in 1 2 3; do
  line=$("$python" "$anchor")
  echo "$line"
  rates+=("$(sed -n 's/.*records_per_s=\([0-9]*\).*/\1/p' <<<"$line")")
done
python_median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)

echo "== Rust (stream-to-firehose transform, one core)"
out=$(TRANSFORM_EVENT="$event" cargo bench --locked -p stream-to-firehose --bench transform 2>/dev/null)
echo "$out"
rust_median=$(grep -A1 "the Python anchor's MODIFY records" <<<"$out" | sed -n 's/.*median \([0-9]*\) records\/s.*/\1/p')
echo "== same records: Rust median $rust_median records/s, Python median $python_median records/s:" \
  "$(( rust_median / python_median ))x"
