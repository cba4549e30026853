#!/usr/bin/env bash
# The whole pipeline on one machine: sample photos, a trained demo model, a private MariaDB, moto as S3,
# `imgsieve serve`, two consumers, and the producer on the S3 prefix and then on the folder. Ends with
# the job summaries, a few rows and the accuracy against the truth file. Everything it starts is
# stopped at exit. Run it with `make demo` (which runs `make setup` first).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
IMGSIEVE=(.venv/bin/imgsieve)
DATA=data/demo
MODEL_DIR=model/demo
RUN="$DATA/.run"
# Random base weights (no download here) at a size that trains in a few CPU minutes.
read -r -a TRAIN_ARGS <<<"${DEMO_TRAIN_ARGS:---weights none --image-size 128 --epochs 10 --batch-size 16}"
BATCH_SIZE=${DEMO_BATCH_SIZE:-32}

pids=()
cleanup() {
    local status=$?
    # Consumers and the server first (they finish on SIGTERM), the services (MariaDB, moto) last.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    exit "$status"
}
trap cleanup EXIT INT TERM

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for WHAT SECONDS COMMAND...: retry COMMAND until it succeeds
    local what=$1 seconds=$2
    shift 2
    for ((i = 0; i < seconds * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    echo "demo: $what did not come up in $seconds s; logs are in $RUN" >&2
    return 1
}

echo "== 1. sample data"
[ -d "$DATA/labelled" ] || "${IMGSIEVE[@]}" sample-data "$DATA/labelled" --per-class 100
[ -f "$DATA/stream/_truth.csv" ] || "${IMGSIEVE[@]}" sample-data "$DATA/stream" --unlabelled 200

echo "== 2. demo model"
if ! ls -d "$MODEL_DIR"/[0-9]* >/dev/null 2>&1; then
    "${IMGSIEVE[@]}" train "$DATA/labelled" --model-dir "$MODEL_DIR" "${TRAIN_ARGS[@]}"
fi

echo "== 3. services: MariaDB, S3 (moto), model server"
rm -rf "$RUN"
mkdir -p "$RUN"
"$PY" scripts/demo_services.py services "$RUN" "$DATA/stream" &
pids+=($!)
services_ready() { test -f "$RUN/env" || { kill -0 "${pids[0]}" || exit 1; false; }; }
wait_for "MariaDB and S3" 120 services_ready
# shellcheck disable=SC1091
source "$RUN/env"
SERVE_PORT=$(free_port)
PRODUCER_PORT=$(free_port)
MODEL_URL="http://127.0.0.1:$SERVE_PORT/v1/models/demo"
"${IMGSIEVE[@]}" serve --model-base-path "$MODEL_DIR" --model-name demo --host 127.0.0.1 \
    --port "$SERVE_PORT" --max-batch-size "$BATCH_SIZE" >"$RUN/serve.log" 2>&1 &
pids+=($!)
model_ready() { curl -sf "$MODEL_URL" | grep -q AVAILABLE; }
wait_for "imgsieve serve" 180 model_ready

echo "== 4. two consumers"
for n in 1 2; do
    "${IMGSIEVE[@]}" consume --producer "tcp://127.0.0.1:$PRODUCER_PORT" --model-url "$MODEL_URL" \
        --batch-size "$BATCH_SIZE" >"$RUN/consumer-$n.log" 2>&1 &
    pids+=($!)
done

echo "== 5. producer on s3://demo/stream/"
"${IMGSIEVE[@]}" produce s3://demo/stream/ --job demo-s3 --bind "tcp://127.0.0.1:$PRODUCER_PORT"
"$PY" scripts/demo_services.py report demo-s3 "$DATA/stream/_truth.csv"

echo
echo "== 6. producer on the folder $DATA/stream"
"${IMGSIEVE[@]}" produce "$DATA/stream" --job demo-folder --bind "tcp://127.0.0.1:$PRODUCER_PORT"
"$PY" scripts/demo_services.py report demo-folder "$DATA/stream/_truth.csv"

echo
echo "== 7. the model server alone, same model and batch size (originals, then shrunk as consumers do)"
"$PY" scripts/bench_stream.py --model-url "$MODEL_URL" --images "$DATA/stream" --batch-size "$BATCH_SIZE"
"$PY" scripts/bench_stream.py --model-url "$MODEL_URL" --images "$DATA/stream" --batch-size "$BATCH_SIZE" \
    --shrink-side 224
echo
echo "demo: done; logs of the services and consumers are in $RUN"
