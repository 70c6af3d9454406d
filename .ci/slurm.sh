#!/usr/bin/env bash
# A real one-node Slurm cluster on this host, for tests/test_slurm.py (the workflow run
# through `--profile slurm`). Run as root; safe to run again (exits 0 when it is up).
#
#   munged -> slurmctld -> slurmd (this host, its real CPUs and memory) -> partition debug
#
# No systemd, no cgroups, no accounting database: daemons are started directly, processes
# are tracked by /proc, and finished jobs stay in squeue for an hour (MinJobAge), which the
# executor plugin's `squeue` status command relies on.
set -euo pipefail

CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
SPOOL_DIR=/var/spool/slurmd
STATE_DIR=/var/lib/slurm/slurmctld
NODE=$(hostname -s)
PARTITION=debug

log() { echo "slurm.sh: $*" >&2; }

diagnose() {
    log "FAILED: $1"
    for f in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        [[ -f $f ]] && { echo "--- tail $f" >&2; tail -n 25 "$f" >&2; }
    done
    command -v sinfo >/dev/null && { echo "--- sinfo -N -l" >&2; sinfo -N -l >&2 || true; }
    exit 1
}

[[ $(id -u) -eq 0 ]] || { log "must run as root (it installs packages and starts daemons)"; exit 1; }

running() {  # pidfile, name: a live process of that name (a stale pid may be reused)
    [[ -s $1 ]] && [[ $(cat "/proc/$(cat "$1")/comm" 2>/dev/null) == "$2" ]]
}

cluster_up() {  # the controller answers and the node takes jobs
    scontrol ping 2>/dev/null | grep -q UP &&
        sinfo -h -n "$NODE" -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'
}

smoke_test() {
    local out
    out=$(timeout 60 srun -N1 -n1 -t 1 hostname 2>&1) || diagnose "smoke test 'srun hostname': $out"
    log "smoke test: srun ran on $out"
}

if command -v scontrol >/dev/null && cluster_up; then
    log "already running: node $NODE in partition $(sinfo -h -o %R | head -n1)"
    smoke_test
    exit 0
fi

# --- packages ----------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    log "installing slurm-wlm and munge"
    # Keep the packages' init scripts from starting daemons during install: we start them.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt run (a concurrent install) rather than fail on its lock.
    apt=(apt-get -qq -o DPkg::Lock::Timeout=300)
    "${apt[@]}" update || { log "FAILED: apt-get update"; exit 1; }
    "${apt[@]}" install -y --no-install-recommends slurm-wlm munge >/dev/null ||
        { log "FAILED: apt-get install slurm-wlm munge"; exit 1; }
    if trap -p EXIT | grep -q policy-rc.d; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
fi

# --- munge -------------------------------------------------------------------------------
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge /etc/munge
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged || diagnose "munged did not start"
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || diagnose "munge credentials do not round-trip"
fi

# --- slurm.conf --------------------------------------------------------------------------
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" "$SPOOL_DIR" "$STATE_DIR"
# e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=23000"
node_line=$(slurmd -C | grep '^NodeName=') || diagnose "slurmd -C did not describe this host"
real_mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
# Leave a little headroom: a node whose memory reads lower than configured is drained.
node_line=$(sed "s/RealMemory=[0-9]*/RealMemory=$((real_mem * 95 / 100))/" <<<"$node_line")
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node_line")

new_conf=$(cat <<EOF
# Written by .ci/slurm.sh: a one-node test cluster on $NODE.
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((real_mem * 95 / 100 / cpus))
ReturnToService=2
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=$SPOOL_DIR
StateSaveLocation=$STATE_DIR
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
)
# slurmd loads a cgroup plugin at start-up even with proctrack/linuxproc and task/none;
# Slurm >= 23.02 can say `disabled`, older ones get cgroup/v1 aimed at an empty directory
# (its init is lazy, nothing is ever mounted), so the host's cgroup layout does not matter.
slurm_version=$(slurmd -V | awk '{print $2}')
if [[ $(printf '%s\n' 23.02 "$slurm_version" | sort -V | head -n1) == 23.02 ]]; then
    cgroup_conf="CgroupPlugin=disabled"
else
    install -d -m 0755 /var/lib/slurm/no-cgroup
    cgroup_conf=$'CgroupPlugin=cgroup/v1\nCgroupMountpoint=/var/lib/slurm/no-cgroup\nCgroupAutomount=no'
fi
cgroup_conf=$'# Written by .ci/slurm.sh: no cgroups in a container.\n'$cgroup_conf

changed=
write_conf() {  # file, content: write it when it differs
    if [[ ! -f $1 ]] || [[ $2 != "$(cat "$1")" ]]; then
        printf '%s\n' "$2" >"$1"
        changed=1
    fi
}
write_conf "$CONF_DIR/slurm.conf" "$new_conf"
write_conf "$CONF_DIR/cgroup.conf" "$cgroup_conf"
# A changed host (CPUs, memory, name) needs the daemons restarted, not just reconfigured.
if [[ -n $changed ]]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        if running "$pidfile" "$(basename "$pidfile" .pid)"; then
            log "config changed: stopping $(basename "$pidfile" .pid)"
            kill "$(cat "$pidfile")"
            for _ in $(seq 20); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.5; done
        fi
    done
fi

# --- daemons -----------------------------------------------------------------------------
if ! running /run/slurmctld.pid slurmctld; then
    log "starting slurmctld"
    slurmctld -i || diagnose "slurmctld did not start"
fi
for _ in $(seq 30); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.5; done
scontrol ping | grep -q UP || diagnose "slurmctld does not answer 'scontrol ping'"
if ! running /run/slurmd.pid slurmd; then
    log "starting slurmd"
    slurmd || diagnose "slurmd did not start"
fi

# --- wait for the node -------------------------------------------------------------------
state=
for i in $(seq 60); do
    state=$(sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1)
    case $state in
        idle | mixed | allocated) break ;;
        down* | drain* | drained* | fail*)
            # after a restart the node may come back down; it is healthy if slurmd runs
            (( i % 5 == 1 )) && scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
[[ $state =~ ^(idle|mixed|allocated)$ ]] || diagnose "node $NODE is '$state' after 60 s"
log "up: node $NODE ($state) in partition $PARTITION"
smoke_test
