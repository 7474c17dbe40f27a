#!/usr/bin/env bash
# Runs a throw-away one-node Slurm cluster (munged, slurmctld, slurmd) on this machine, for tests.
#   scripts/slurm-local.sh start  [DIR]  wipe DIR, write its slurm.conf and munge key, start the daemons,
#       wait (~3 s, at most 30) until the node is idle and the scheduler runs; prints on stdout the
#       client environment: eval "$(scripts/slurm-local.sh start)"
#   scripts/slurm-local.sh stop   [DIR]  cancel all jobs, stop the daemons (by their pid files) and any
#       leftover job processes; idempotent
#   scripts/slurm-local.sh status [DIR]  exit 0 and show the node if up, 1 if down
# DIR is ${BDGUARD_SLURM_DIR:-/tmp/bdguard-slurm}, holding all state: slurm.conf, munge.key, munge.socket,
# *.pid, *.log (daemons), ctld/ and d/ (spools), jobcomp.txt (a line per finished job), logs/ (for job
# output). Nothing in /etc/slurm, /etc/munge or /run/munge is used: clients find the munge socket via
# AuthInfo=socket= in DIR/slurm.conf, so SLURM_CONF is all they need. Ports ${BDGUARD_SLURM_PORT:-16817}
# (slurmctld) and the next (slurmd), reached on 127.0.0.1. Needs root and the Debian 12 packages
# slurmctld slurmd slurm-client munge.
set -euo pipefail

cmd=${1:-}
dir=$(realpath -m -- "${2:-${BDGUARD_SLURM_DIR:-/tmp/bdguard-slurm}}")
port=${BDGUARD_SLURM_PORT:-16817}
if ! [[ $port =~ ^[1-9][0-9]{3,4}$ ]] || ((port > 65534)); then echo "slurm-local: bad port $port" >&2; exit 2; fi
node=$(hostname -s)
export SLURM_CONF=$dir/slurm.conf

say() { echo "slurm-local: $*" >&2; }
die() { say "error: $*"; exit 1; }
fail() { # die, showing the daemons' logs
  say "error: $*"
  for f in "$dir"/{munged,slurmctld,slurmd}.log; do [[ -f $f ]] && tail -v -n 15 "$f" >&2; done
  stop 2>/dev/null || true
  exit 1
}
alive() { [[ $(ps -o stat= -p "$1") == [^Z]* ]]; } # a zombie has exited
# Prints the pid in DIR/NAME.pid if that process is alive and is NAME.
live_pid() {
  local pid
  pid=$(cat "$dir/$1.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$1"* ]] && alive "$pid" && echo "$pid"
}
any_live() { live_pid munged || live_pid slurmctld || live_pid slurmd; }
node_state() { timeout 5 sinfo -h -n "$node" -o %T 2>/dev/null; }
# True if something listens on TCP port $1 (any address).
port_busy() {
  awk -v p=":$(printf %04X "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p {b = 1} END {exit !b}' /proc/net/tcp{,6}
}
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# Processes of this cluster besides munged and slurmctld: slurmd and slurmstepd (they hold
# DIR/slurmd.log open; slurmstepd overwrites its environment), job tasks (Slurm puts SLURM_JOB_ID
# and SLURM_CONF=DIR/slurm.conf in their environment, daemonised ones too) and their descendants;
# never this script or its ancestors.
cluster_pids() {
  local p pp n=0 keep=" "
  local -A in=()
  for ((p = BASHPID; p > 1; )); do keep+="$p "; p=$(ps -o ppid= -p "$p") || break; p=$((p)); done
  for p in $(
    find /proc/[0-9]*/fd -lname "$dir/slurmd.log" 2>/dev/null | cut -d/ -f3
    grep -lzs '^SLURM_JOB_ID=' /proc/[0-9]*/environ | xargs -r grep -lzxs "SLURM_CONF=$SLURM_CONF" | cut -d/ -f3
  ); do in[$p]=1; done
  while ((${#in[@]} != n)); do # add children until nothing new appears
    n=${#in[@]}
    while read -r p pp; do [[ -n ${in[$pp]:-} ]] && in[$p]=1; done < <(ps -e -o pid=,ppid=)
  done
  for p in "${!in[@]}"; do [[ $keep == *" $p "* ]] || echo "$p"; done
}

# Sends SIGTERM to the pids, waits up to 10 s for them to exit, then SIGKILLs the rest.
term_wait() {
  local p left=("$@")
  kill -TERM "$@" 2>/dev/null || true
  for ((i = 0; i < 100 && ${#left[@]}; i++)); do
    sleep 0.1
    left=()
    for p in "$@"; do alive "$p" && left+=("$p"); done
  done
  ((${#left[@]})) || return 0
  say "SIGKILL to ${left[*]}"
  kill -KILL "${left[@]}" 2>/dev/null || true
}

write_conf() {
  # The daemons listen on 127.0.0.1 instead of all addresses only if the host name resolves to it.
  local comm='# host name not 127.*: listening on all addresses'
  [[ $(getent hosts "$node") != 127.* ]] || comm=CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
  cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh: one node, all state under $dir.
ClusterName=bdguard
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/ctld
SlurmdSpoolDir=$dir/d
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
PlugStackConfig=$dir/plugstack.conf
MailProg=/bin/true
$comm
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.txt
DependencyParameters=kill_invalid_depend
# Default 3 s: a job would start at most every 3 s; with 0, once a second (the scheduler tick).
SchedulerParameters=batch_sched_delay=0
ReturnToService=2
KillWait=2
# Finished jobs stay visible to scontrol/squeue -t all for 10 minutes.
MinJobAge=600
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(awk '/^MemTotal/ {print int($2 * 0.9 / 1024)}' /proc/meminfo) State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  : >"$dir/plugstack.conf" # else the default /etc/slurm/plugstack.conf would be read
}

start() {
  if any_live >/dev/null; then die "a cluster from $dir is running; run: $0 stop $dir"; fi
  # Start from an empty state, or a drained node stays drained.
  [[ ! -e $dir || -e $dir/.bdguard-slurm ]] || die "$dir exists and was not made by this script; not removing it"
  rm -rf -- "$dir"
  mkdir -p -- "$dir"/{ctld,d,logs} && chmod 755 "$dir" && : >"$dir/.bdguard-slurm"
  for p in "$port" $((port + 1)); do
    port_busy "$p" && die "TCP port $p is in use (another Slurm?); choose others with BDGUARD_SLURM_PORT"
  done
  write_conf
  (umask 077 && dd if=/dev/urandom of="$dir/munge.key" bs=1 count=1024 status=none)
  local state='' t0
  t0=$(now_ms)
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" --pid-file="$dir/munged.pid" \
    --log-file="$dir/munged.log" --seed-file="$dir/munged.seed" || fail "munged did not start"
  slurmctld -f "$SLURM_CONF" || fail "slurmctld did not start"
  for ((i = 0; i < 100; i++)); do [[ $(timeout 5 scontrol ping 2>/dev/null) == *UP* ]] && break; sleep 0.05; done
  slurmd -f "$SLURM_CONF" -N "$node" || fail "slurmd did not start"
  # Ready when the node is idle and the main scheduler has run (~3 s after slurmctld starts).
  while (($(now_ms) - t0 < 30000)); do
    state=$(node_state) || true
    [[ $state == idle && $(timeout 5 sdiag 2>/dev/null) == *"Total cycles: "[1-9]* ]] && break
    (($(now_ms) - t0 < 2000)) || { live_pid slurmctld && live_pid slurmd; } >/dev/null || fail "slurmctld or slurmd exited"
    sleep 0.1
  done
  (($(now_ms) - t0 < 30000)) || fail "node $node is '${state:-unreachable}' or not scheduling after 30 s"
  say "up in $(($(now_ms) - t0)) ms: node $node idle, $(nproc) CPUs, in $dir"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  local pid pids=() left=()
  if live_pid slurmctld >/dev/null; then
    timeout 5 scancel --quiet --partition=local 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do # up to 5 s for the jobs to end
      [[ -n $(timeout 2 squeue -h -t running,completing,suspended -o %i 2>/dev/null) ]] || break
      sleep 0.1
    done
  fi
  for name in slurmd slurmctld munged; do pid=$(live_pid "$name") && pids+=("$pid"); done
  for pid in $(cluster_pids); do [[ " ${pids[*]} " == *" $pid "* ]] || left+=("$pid"); done
  # slurmstepd ignores SIGTERM.
  ((${#left[@]} == 0)) || { say "SIGKILL to leftover job processes ${left[*]}"; kill -KILL "${left[@]}" 2>/dev/null || true; }
  term_wait "${pids[@]}"
  say "stopped ($dir)"
}

status() {
  local state
  any_live >/dev/null || { say "down ($dir)"; return 1; }
  for name in munged slurmctld slurmd; do echo "$name: $(live_pid "$name" || echo down)"; done
  state=$(node_state) || true
  echo "node $node: ${state:-unreachable}"
  [[ $state =~ ^(idle|mixed|allocated)$ ]]
}

case $cmd in
  start | stop | status) "$cmd" ;;
  *) sed -n '2,14p' "$0" >&2; exit 2 ;;
esac
