#!/usr/bin/env bash
# Records workflow histories for the replay test (test/fixtures/histories/): a promoted, a foreign-artifact,
# a rejected and a failed run of the current pipeline workflow; needs a built tree (make setup / npm run build).
# It never replaces a history: move the current ones to test/fixtures/histories/v<N>/ first, where they keep replaying
# until no run of that code can be open (docs/workflow-changes.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures/histories
mkdir -p "$out"
for name in promoted foreign rejected failed; do
  if [ -e "$out/$name.json" ]; then
    echo "$out/$name.json exists: move the current histories to $out/v<N>/ first (docs/workflow-changes.md)" >&2
    exit 1
  fi
done
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# The server has what the embedded one has: ttd's search attributes (a run's workflow upserts them), priority, fairness.
mapfile -t features < <(node -e 'for (const a of require("./dist/temporal/search-attributes").devServerFeatureArgs()) console.log(a)')
.venv/bin/temporal server start-dev --ip 127.0.0.1 --port "$port" --headless --log-level error "${features[@]}" >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
work=$(mktemp -d)
export TEMPORAL_ADDRESS=127.0.0.1:$port TTD_HOME=$work/home TTD_QUEUE_PREFIX=ttd-record
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

record() { # name spec
  local id
  id=$(bin/ttd run "$2" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).runId))') || true
  .venv/bin/temporal workflow show --address "$TEMPORAL_ADDRESS" -w "$id" -o json > "$out/$1.json"
  echo "recorded $1 ($id)"
}
cp test/fixtures/models/nan-loss.py test/fixtures/models/raises.py "$work/"
printf 'name: nan-loss\nmodel: ./nan-loss.py\ntrain: { epochs: 2, batch_size: 4 }\n' > "$work/nan.yaml"
printf 'name: raises\nmodel: ./raises.py\n' > "$work/raises.yaml"
/usr/bin/python3 test/fixtures/foreign/make_python_artifact.py "$work" >/dev/null
printf 'name: foreign\nartifact: ./model.pt\nreferences: ./refs.safetensors\n' > "$work/foreign.yaml"
record promoted examples/seed-mlp/pipeline.yaml
record foreign "$work/foreign.yaml"
record rejected "$work/nan.yaml"
record failed "$work/raises.yaml"
