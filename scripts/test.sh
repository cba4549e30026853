#!/usr/bin/env bash
# The whole test suite as two pytest runs side by side (make test): the tests of deployed hosts (tests/infra, a
# copy of the local topology, and tests/aws, moto and stand-ins) in the background, everything else (unit,
# integration, molecule) in the foreground. Both halves spend most of their time waiting on containers and
# playbooks, so together they take about half as long as one after the other. The background half's output
# follows the foreground's; the exit status is non-zero if either failed. Arguments go to both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
work=.cache/imgsieve/tests
mkdir -p "$work"
deployed_log=$work/deployed.log

# Each run has its own temporary root: pytest clears --basetemp at start, and numbered roots shared by two
# runs would be pruned under each other.
"$PY" -m pytest tests/infra tests/aws --basetemp="$work/tmp-deployed" "$@" >"$deployed_log" 2>&1 &
deployed=$!
trap 'kill -INT "$deployed" 2>/dev/null; wait "$deployed"; exit 130' INT TERM
echo "test: tests/infra and tests/aws run alongside; their output follows (live: $deployed_log)"

"$PY" -m pytest --ignore=tests/infra --ignore=tests/aws --basetemp="$work/tmp-rest" "$@"
rest_status=$?
wait "$deployed"
deployed_status=$?
trap - INT TERM

echo
echo "=============================== tests/infra and tests/aws ==============================="
cat "$deployed_log"
echo
echo "test: unit, integration and molecule exit $rest_status; tests/infra and tests/aws exit $deployed_status"
[ "$rest_status" -eq 0 ] && [ "$deployed_status" -eq 0 ]
