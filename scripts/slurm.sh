#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for `hpsearch launch slurm` and its tests: Debian's
# slurm-wlm and munge, slurmctld + slurmd on localhost, a generated slurm.conf with this
# machine's CPUs, no cgroups (proctrack/linuxproc, task/none), no accounting database (jobs
# are followed with squeue and scontrol). Needs root; idempotent and quick when it is up.
# Used by scripts/sysdeps.sh (so by `make test`) and by `make slurm`.
#
# HPSEARCH_TEST_SLURM=0 skips it (the Slurm tests then skip, saying why).
set -euo pipefail
[ "${HPSEARCH_TEST_SLURM:-1}" = 0 ] && exit 0
HERE=/var/lib/hpsearch-slurm  # state, spool and logs of this cluster
CONF=/etc/slurm/slurm.conf
PARTITION=debug

up() { sinfo -h -p "$PARTITION" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }
if command -v sinfo >/dev/null && up; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "error: no Slurm cluster answers (sinfo), and starting one needs root:" \
       "sudo bash scripts/slurm.sh" >&2
  exit 2
fi
if ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "installing the Debian packages of a one-node Slurm: slurm-wlm munge"
  log=$(mktemp)
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends slurm-wlm munge; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "error: apt-get could not install slurm-wlm munge (its last lines above)" >&2
    exit 2
  fi
  rm -f "$log"
fi

# munge: the key the package made, its directories owned by the munge user, the daemon as munge
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
chmod 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=128 status=none
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
fi
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  pkill -x munged 2>/dev/null || true
  runuser -u munge -- /usr/sbin/munged --force
fi

host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))  # MB, below the real
mkdir -p "$HERE/ctld" "$HERE/d" "$HERE/log" /etc/slurm
cat >"$CONF.new" <<EOF
# Written by hpsearch's scripts/slurm.sh: a one-node cluster on $host for tests and trials.
ClusterName=hpsearch
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$HERE/ctld
SlurmdSpoolDir=$HERE/d
SlurmctldPidFile=$HERE/slurmctld.pid
SlurmdPidFile=$HERE/slurmd.pid
SlurmctldLogFile=$HERE/log/slurmctld.log
SlurmdLogFile=$HERE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=60
MinJobAge=600
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$CONF.new" "$CONF" 2>/dev/null; then
  mv "$CONF.new" "$CONF"
  pkill -x slurmctld 2>/dev/null || true
  pkill -x slurmd 2>/dev/null || true
  for _ in $(seq 1 40); do { pgrep -x slurmctld || pgrep -x slurmd; } >/dev/null || break; sleep 0.25; done
else
  rm -f "$CONF.new"
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 1 120); do  # bounded: the node registers within a few seconds
  if up; then break; fi
  # a node left DOWN or DRAINED by an earlier run comes back
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 0.5
done
if ! up; then
  echo "error: Slurm did not bring node $host up within 60 s: $(sinfo -h -o '%T %E' 2>&1 |
        head -n 1); see $HERE/log/slurmctld.log and slurmd.log" >&2
  exit 2
fi
echo "Slurm on $host: partition $PARTITION, $cpus CPUs (scripts/slurm.sh; logs in $HERE/log)"
