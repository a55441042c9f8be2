#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm tests: Debian's slurm-wlm and
# munge, a generated slurm.conf, munged, slurmctld and slurmd, run as root.
#
#   tests/slurm/cluster.sh start   # idempotent; waits until the node takes jobs
#                                  # (restarts daemons running an older slurm.conf)
#   tests/slurm/cluster.sh stop
set -euo pipefail
state=${SLURM_TEST_STATE:-/var/tmp/mnist-burn-slurm}
conf=/etc/slurm/slurm.conf

stop() {
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
}

start() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null || {
    echo "no slurmctld or munged: apt-get install slurm-wlm munge" >&2; exit 1; }
  host=$(hostname -s)
  cpus=$(nproc)
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  wanted=$(cat <<CONF
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
# A requeued job waits out the credential lifetime (120 s by default) before it runs
# again; the tests requeue trials and should not wait that long.
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmUser=root
SlurmdSpoolDir=$state/spool
StateSaveLocation=$state/state
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
JobCompType=jobcomp/none
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
)
  # Daemons left running by an earlier run keep the slurm.conf they started with:
  # reuse them only if it is this one.
  if [ "$(cat "$conf" 2>/dev/null)" = "$wanted" ] && sinfo -h -o %T 2>/dev/null | grep -qx idle; then
    return
  fi
  stop
  for _ in $(seq 20); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.5; done
  mkdir -p "$state"/{spool,state,log} /etc/slurm /run/munge
  printf '%s\n' "$wanted" >"$conf"
  [ -s /etc/munge/munge.key ] || mungekey --create --keyfile /etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key /run/munge
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged
  slurmctld
  slurmd
  for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qx idle; then return; fi
    sleep 0.5
  done
  echo "the Slurm node did not come up; see $state/log" >&2
  tail -n 5 "$state"/log/*.log >&2 || true
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
