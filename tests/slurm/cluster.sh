#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for the tests and for trying storm on SLURM.
#   tests/slurm/cluster.sh install      apt-get slurm-wlm and munge if missing (needs root)
#   tests/slurm/cluster.sh start DIR    write DIR/slurm.conf, start munged, slurmctld, slurmd
#   tests/slurm/cluster.sh stop DIR     stop them
# Clients find the cluster through SLURM_CONF=DIR/slurm.conf (start prints the export line).
set -euo pipefail
cmd=${1:?usage: cluster.sh install|start DIR|stop DIR}

case "$cmd" in
install)
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    exit 0
  fi
  [[ $(id -u) == 0 ]] || { echo "error: installing slurm-wlm and munge needs root (apt-get)" >&2; exit 2; }
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  ;;
start)
  dir=$(realpath -m "${2:?usage: cluster.sh start DIR}")
  if pgrep -r R,S,D -x slurmctld >/dev/null || pgrep -r R,S,D -x slurmd >/dev/null; then
    echo "error: a slurmctld or slurmd already runs here; stop it first (cluster.sh stop DIR)" >&2
    exit 2
  fi
  mkdir -p "$dir/state" "$dir/spool"
  mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=storm-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
MinJobAge=3600
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
CONF
  # munge: the package's key, a run dir owned by the munge user, the daemon as that user
  mkdir -p /run/munge && chown munge:munge /run/munge
  [[ -f /etc/munge/munge.key ]] || { mungekey --create 2>/dev/null || create-munge-key; }
  pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF"
  slurmd -f "$SLURM_CONF" -N localhost
  for _ in $(seq 60); do
    sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
    sleep 0.5
  done
  echo "error: the SLURM node did not become idle; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  exit 1
  ;;
stop)
  dir=$(realpath -m "${2:?usage: cluster.sh stop DIR}")
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    [[ -f $pidfile ]] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  ;;
*)
  echo "error: unknown command '$cmd' (install, start DIR, stop DIR)" >&2
  exit 2
  ;;
esac
