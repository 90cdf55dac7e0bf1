#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for tests/test_slurm_cluster.py.
#
#   sudo bash tests/cluster/start_slurm.sh          # install (apt), configure, start; wait for the node
#   sudo bash tests/cluster/start_slurm.sh --stop   # stop the cluster's daemons (by pid file)
#
# Debian's slurm-wlm: munged, MariaDB + slurmdbd (accounting: submitit polls job states with
# `sacct`, which answers only with accounting storage), slurmctld and slurmd, all on this host.
# Needs root and apt-get. Idempotent: with the node already answering in `sinfo` it only prints
# the version. Made for machines without systemd (containers, CI): it starts the daemons itself
# (a munged or MariaDB already answering is used as it is); --stop uses their pid files.
# Logs: /var/log/slurm/*.log, /run/mysqld/mariadb.log.
set -euo pipefail

RUN_DIR=/run/vaesweep-slurm
CONF=/etc/slurm/slurm.conf
DBD_CONF=/etc/slurm/slurmdbd.conf
CLUSTER=vaesweep
DB_PASS=vaesweep-test-only # a local, socket-only test database
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
WAIT_S=${SLURM_START_WAIT_S:-180}

say() { echo "start_slurm: $*"; }
die() {
  echo "start_slurm: $*" >&2
  exit 1
}

node_state() { sinfo -h -N -n "$(hostname -s)" -o %T 2>/dev/null | head -1 | tr -d '*~#'; }
node_up() { case "$(node_state)" in idle | mixed | allocated | completing) return 0 ;; *) return 1 ;; esac }

# Poll COMMAND until it succeeds or WAIT_S seconds have passed (no fixed sleeps). With
# WATCH=PIDFILE set, give up at once if that daemon has died (its log says why).
wait_for() {
  local what=$1 deadline=$((SECONDS + WAIT_S))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "gave up after ${WAIT_S}s waiting for $what"
    if [ -n "${WATCH:-}" ] && [ -s "$WATCH" ] && ! running "$WATCH"; then
      die "$what: the daemon died (see ${LOG:-its log})"
    fi
    sleep 0.5
  done
}

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Each daemon's pid file (slurm.conf and slurmdbd.conf name the slurm ones).
declare -A PIDFILE=(
  [munged]=/run/munge/munged.pid
  [mariadb]=/run/mysqld/mariadb.pid
  [slurmdbd]=$RUN_DIR/slurmdbd.pid
  [slurmctld]=$RUN_DIR/slurmctld.pid
  [slurmd]=$RUN_DIR/slurmd.pid
)

stop_all() {
  local name pidfile pid
  for name in slurmd slurmctld slurmdbd mariadb munged; do
    pidfile=${PIDFILE[$name]}
    if running "$pidfile"; then
      pid=$(cat "$pidfile")
      say "stopping $name ($pid)"
      kill "$pid"
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$pidfile"
  done
  rm -f "$RUN_DIR/mariadb-start.pid"
}

if [ "${1:-}" = --stop ]; then
  stop_all
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--stop]"

if command -v sinfo >/dev/null && node_up; then
  say "cluster already up (node $(hostname -s) $(node_state))"
  sinfo --version
  exit 0
fi

[ "$(id -u)" = 0 ] || die "must run as root (it installs packages and starts daemons)"
command -v apt-get >/dev/null || die "needs apt-get (Debian/Ubuntu)"

# ------------------------------------------------------------------------- packages
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
    die "apt-get install ${missing[*]} failed"
fi

mkdir -p "$RUN_DIR"
HOST=$(hostname -s)
CPUS=$(nproc)
# slurmd drains a node that claims more memory than it has: leave a tenth for the system.
MEM_MB=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')

# ------------------------------------------------------------------------- munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! running "${PIDFILE[munged]}" && ! (munge -n | unmunge) >/dev/null 2>&1; then
  say "starting munged"
  runuser -u munge -- /usr/sbin/munged --pid-file="${PIDFILE[munged]}" --force
fi
wait_for "munge to answer" sh -c 'munge -n | unmunge'

# ------------------------------------------------------------------------- MariaDB
if ! running "${PIDFILE[mariadb]}" && ! mariadb-admin --socket=/run/mysqld/mysqld.sock ping >/dev/null 2>&1; then
  say "starting MariaDB"
  mkdir -p /run/mysqld
  chown mysql:mysql /run/mysqld
  [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  # Socket only: nothing listens on the network. Its files go where the mysql user may write.
  setsid /usr/sbin/mariadbd --user=mysql --skip-networking --socket=/run/mysqld/mysqld.sock \
    --pid-file="${PIDFILE[mariadb]}" --log-error=/run/mysqld/mariadb.log </dev/null >/dev/null 2>&1 &
  echo $! >"$RUN_DIR/mariadb-start.pid"
  WATCH=$RUN_DIR/mariadb-start.pid LOG=/run/mysqld/mariadb.log \
    wait_for "MariaDB" mariadb-admin --socket=/run/mysqld/mysqld.sock ping
fi
mariadb --socket=/run/mysqld/mysqld.sock <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL

# ------------------------------------------------------------------------- configuration
mkdir -p /etc/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd
chown slurm:slurm /var/log/slurm /var/lib/slurm/slurmctld
cat >"$DBD_CONF" <<EOF
# Written by vaesweep's tests/cluster/start_slurm.sh
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=$RUN_DIR/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$DB_PASS
EOF
chown slurm:slurm "$DBD_CONF"
chmod 600 "$DBD_CONF"

cat >"$CONF" <<EOF
# Written by vaesweep's tests/cluster/start_slurm.sh: one node, this host.
ClusterName=$CLUSTER
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups here (containers): track job processes through /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
# scancel: SIGTERM, then SIGKILL this many seconds later (default 30).
KillWait=5
ReturnToService=2
SchedulerParameters=sched_interval=2
MinJobAge=300
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# ------------------------------------------------------------------------- daemons
if ! running "${PIDFILE[slurmdbd]}"; then
  say "starting slurmdbd"
  /usr/sbin/slurmdbd
fi
WATCH=${PIDFILE[slurmdbd]} LOG=/var/log/slurm/slurmdbd.log wait_for "slurmdbd" sacctmgr -i list cluster
if ! running "${PIDFILE[slurmctld]}"; then
  say "starting slurmctld (job state of any earlier cluster cleared)"
  # -c: a test cluster keeps no jobs across restarts. Without it slurmctld recovers the jobs
  # of a cluster stopped mid-test (or of the machine image it was copied from): their tasks
  # run again or keep the node allocated until their time limit, and new tests' jobs pend.
  /usr/sbin/slurmctld -c
fi
WATCH=${PIDFILE[slurmctld]} LOG=/var/log/slurm/slurmctld.log wait_for "slurmctld" scontrol ping
if ! running "${PIDFILE[slurmd]}"; then
  say "starting slurmd"
  /usr/sbin/slurmd
fi
WATCH=${PIDFILE[slurmd]} LOG=/var/log/slurm/slurmd.log wait_for "node $HOST to be idle in sinfo" node_up
# The accounting database must know the cluster for sacct to answer.
wait_for "cluster $CLUSTER in the accounting database" sh -c "sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER"
say "node $HOST $(node_state): $CPUS CPUs, ${MEM_MB} MB"
sinfo --version
