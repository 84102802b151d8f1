#!/usr/bin/env bash
# A single-node SLURM on this machine, for the SLURM tests (make test-slurm) and for trying the
# profile: this host is controller and only compute node, partition "debug". Idempotent: installs
# Debian's slurm-wlm and munge if missing, writes the configs, (re)starts munged, slurmctld and slurmd,
# and waits until the node is idle. Needs root (apt, /etc/slurm). Job status comes from squeue
# (no slurmdbd here, so sacct has no accounting storage): MinJobAge keeps finished jobs visible to
# squeue for 10 minutes, which profiles/slurm-local relies on (status_command: squeue).
#   scripts/slurm/local_cluster.sh [start|stop|status]
set -euo pipefail
action=${1:-start}
conf_dir=/etc/slurm
host=$(hostname -s)

stop() {
    for daemon in slurmd slurmctld; do
        if [ -f "/run/$daemon.pid" ]; then kill "$(cat /run/$daemon.pid)" 2>/dev/null || true; rm -f "/run/$daemon.pid"; fi
    done
    sleep 1
}

if [ "$action" = stop ]; then stop; exit 0; fi
if [ "$action" = status ]; then sinfo && squeue; exit $?; fi

if [ "$(id -u)" != 0 ]; then echo "local_cluster.sh: needs root (installs packages, writes $conf_dir)" >&2; exit 1; fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm munge >/dev/null
fi

# munge: one key, shared by the (single) controller and node
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
    sleep 1
fi

# CPUs the node offers: this machine's, or PALETTE_SLURM_CPUS (more than it has: the test jobs are
# short and spend much of their time starting up and waiting, so a small machine runs more at once)
cpus=${PALETTE_SLURM_CPUS:-$(nproc)}
memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$conf_dir/slurm.conf.new" <<CONF
# Written by scripts/slurm/local_cluster.sh: a single-node test cluster.
ClusterName=palette-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# finished jobs stay visible to squeue (the status source without accounting) for 10 minutes
MinJobAge=600
# a job past its time limit gets SIGTERM, then SIGKILL KillWait seconds later
KillWait=30
OverTimeLimit=0
# the scheduler looks at the queue often: the tests' jobs are short
SchedulerParameters=sched_interval=2
MessageTimeout=30
# config_overrides: slurmd takes CPUs from this file even where the hardware has fewer
SlurmdParameters=config_overrides
NodeName=$host CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
changed=1
if [ -f "$conf_dir/slurm.conf" ] && cmp -s "$conf_dir/slurm.conf.new" "$conf_dir/slurm.conf"; then changed=0; fi
mv "$conf_dir/slurm.conf.new" "$conf_dir/slurm.conf"
# no cgroup.conf: proctrack/linuxproc and task/none need no cgroups (containers often have none)

running() { [ -f "/run/$1.pid" ] && kill -0 "$(cat /run/$1.pid)" 2>/dev/null; }
if [ "$changed" = 1 ] || ! running slurmctld || ! running slurmd; then
    stop
    /usr/sbin/slurmctld
    sleep 1
    /usr/sbin/slurmd
fi
for _ in $(seq 60); do
    state=$(sinfo -h -n "$host" -o %T 2>/dev/null || true)
    case "$state" in
        idle*|mix*|alloc*) echo "local SLURM up: node $host ($cpus CPUs, ${memory_mb} MB), partition debug"; exit 0 ;;
        down*|drain*) scontrol update nodename="$host" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
echo "local_cluster.sh: node $host did not become idle (state: ${state:-none}); see /var/log/slurm/" >&2
exit 1
