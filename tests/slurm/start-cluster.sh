#!/usr/bin/env bash
# Start a one-node SLURM cluster on this machine (Debian/Ubuntu, as root), for tests/test_slurm.py.
#
# Installs slurm-wlm and munge if missing, creates a munge key, and configures one node in two
# partitions, `cpu` (default) and `gpu`, with one stand-in GPU (gres File=/dev/null) so that
# `sbatch --gpus=1` jobs are scheduled for real on a machine without a GPU. No slurmdbd:
# AccountingStorageType=accounting_storage/none, and MinJobAge=600 keeps finished jobs visible to
# `squeue`, which the Snakemake plugin then uses for status queries. Idempotent: rerunning it
# restarts the daemons with the same configuration.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
    echo "start-cluster.sh: must run as root (it installs packages and starts daemons)" >&2
    exit 2
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge

if [[ ! -s /etc/munge/munge.key ]]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
pkill -x munged 2>/dev/null || true
sudo_munge() { if command -v runuser >/dev/null; then runuser -u munge -- "$@"; else su -s /bin/sh munge -c "$*"; fi; }
sudo_munge /usr/sbin/munged --force

cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=synthecg-test
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
ReturnToService=2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
GresTypes=gpu
NodeName=$host CPUs=$cpus RealMemory=$memory_mb Gres=gpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
CONF
cat > "$conf_dir/gres.conf" <<CONF
NodeName=$host Name=gpu File=/dev/null
CONF

pkill -x slurmctld 2>/dev/null || true
pkill -x slurmd 2>/dev/null || true
sleep 1
slurmctld -c  # -c: start clean, without jobs of an earlier run
slurmd
for _ in $(seq 30); do
    if sinfo -h -o "%T" 2>/dev/null | grep -q idle; then
        sinfo
        exit 0
    fi
    sleep 1
done
echo "start-cluster.sh: the node did not become idle; see /var/log/slurm/" >&2
sinfo >&2 || true
exit 1
