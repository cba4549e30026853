#!/usr/bin/env bash
# The pipeline deployed as in production, on this machine: systemd containers reached over SSH
# (playbooks/local_up.yml), site.yml (MariaDB, the model server, two consumer hosts, the producer), then
# one job on the sample stream (playbooks/run_job.yml) and its summary, a few rows and the accuracy against
# the sample set's truth file, and `fab status`. This is `make demo`.
# Sample data and the demo model are made on this machine first when missing, as scripts/demo.sh does.
# The hosts stay up afterwards: `fab status`, `fab logs`; `ansible-playbook playbooks/local_down.yml`
# removes them.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV_BIN=${VENV_BIN:-.venv/bin}
DATA=data/demo
MODEL_DIR=model/demo
# Random base weights (no download here) at a size that trains in a few CPU minutes.
read -r -a TRAIN_ARGS <<<"${DEMO_TRAIN_ARGS:---weights none --image-size 128 --epochs 10 --batch-size 16}"
# Each run streams its own copy of the sample photos: the store skips images it already has a row for.
JOB=${DEMO_JOB:-demo-$(date +%Y%m%d-%H%M%S)}
export PATH="$PWD/$VENV_BIN:$PATH"

echo "== 1. sample data and the demo model (on this machine, when missing)"
[ -f "$DATA/stream/_truth.csv" ] || imgsieve sample-data "$DATA/stream" --unlabelled 200
if ! ls -d "$MODEL_DIR"/[0-9]* >/dev/null 2>&1; then
    [ -d "$DATA/labelled" ] || imgsieve sample-data "$DATA/labelled" --per-class 100
    imgsieve train "$DATA/labelled" --model-dir "$MODEL_DIR" "${TRAIN_ARGS[@]}"
fi

echo "== 2. the local hosts (systemd containers with sshd)"
ansible-playbook playbooks/local_up.yml

echo "== 3. site.yml: the store, the model server, the consumers, the producer"
started=$SECONDS
ansible-playbook site.yml
echo "site.yml took $((SECONDS - started)) s"

echo "== 4. job $JOB on the sample stream"
ansible-playbook playbooks/run_job.yml -e "job=$JOB" -e "source=/var/lib/imgsieve/sources/$JOB" -e "upload=$DATA/stream"

echo "== 5. a few rows of job $JOB and its accuracy against the truth file"
# This machine is the gateway of the hosts' network, which the producer's account may log in from.
db_address=$(podman inspect imgsieve-db --format '{{ (index .NetworkSettings.Networks "imgsieve").IPAddress }}')
IMGSIEVE_DB_PASSWORD=$(ansible-inventory --host imgsieve-db |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["imgsieve_db_producer_password"])')
IMGSIEVE_DB_URL="mysql://imgsieve_producer@$db_address:3306/imgsieve"
export IMGSIEVE_DB_PASSWORD IMGSIEVE_DB_URL
python scripts/demo_services.py report "$JOB" "$DATA/stream/_truth.csv"

echo
echo "== 6. the deployment now"
fab status
echo
echo "deploy_demo: done. Follow the consumers with \`fab logs\`; remove the hosts with"
echo "  $VENV_BIN/ansible-playbook playbooks/local_down.yml"
