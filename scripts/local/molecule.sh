#!/usr/bin/env bash
# Run molecule for one role with what this machine needs: container limits within its hard limits, the runc
# runtime (files/containers.conf of role local_hosts) and the locally built base image, built first if missing.
#   scripts/local/molecule.sh common            # molecule test
#   scripts/local/molecule.sh mysql converge    # any molecule command
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
role=${1:?usage: scripts/local/molecule.sh ROLE [MOLECULE COMMAND AND ARGS]}
shift
[ -d "$root/roles/$role/molecule" ] || { echo "molecule.sh: role $role has no molecule scenario" >&2; exit 2; }
BASE_IMAGE=localhost/imgsieve-base:bookworm

# The smallest of the arguments; "unlimited" counts as no limit.
smallest() { printf '%s\n' "$@" | grep -v unlimited | sort -n | head -1; }

export PATH="$root/.venv/bin:$PATH"
export CONTAINERS_CONF="$root/roles/local_hosts/files/containers.conf"
export IMGSIEVE_LOCAL_NOFILE; IMGSIEVE_LOCAL_NOFILE=$(smallest 65536 "$(ulimit -Hn)")
# Podman runs containers under min(ulimit -Hu, kernel.pid_max); a higher process limit is refused.
export IMGSIEVE_LOCAL_NPROC; IMGSIEVE_LOCAL_NPROC=$(smallest 4096 "$(ulimit -Hu)" "$(cat /proc/sys/kernel/pid_max)")

if ! podman image exists "$BASE_IMAGE"; then
    (cd "$root" && ansible-playbook playbooks/local_up.yml --tags local_hosts_image)
fi
cd "$root/roles/$role"
exec molecule "${@:-test}"
