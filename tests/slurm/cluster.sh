#!/usr/bin/env bash
# A single-node SLURM cluster for testing twinflow's SLURM profile (Debian/Ubuntu, as root).
#
#   tests/slurm/cluster.sh start    install slurmctld/slurmd/munge if missing, write a private
#                                   config, start munged (unless one answers), slurmctld, slurmd,
#                                   wait until the node is idle; prints `export SLURM_CONF=...`
#   tests/slurm/cluster.sh stop     cancel its jobs, stop the daemons it started (by pid, never by
#                                   name)
#   tests/slurm/cluster.sh status   daemons, node state, queue
#   tests/slurm/cluster.sh env      prints `export SLURM_CONF=...` (use: eval "$(... env)")
#
# The node declares one fake GPU as a generic resource (gres.conf: File=/dev/null, AutoDetect=off)
# so that `--gpus=1` jobs are scheduled (they see CUDA_VISIBLE_DEVICES=0; CUDA stays unavailable).
#
# Everything lives under $TWINFLOW_SLURM_DIR (default /tmp/twinflow-slurm): config, state, pid
# files, logs. Nothing is written to /etc/slurm: clients find the cluster only through
# SLURM_CONF. That is deliberate: a findable slurm.conf whose controller is down makes every
# `snakemake` start stall ~10 s (the SLURM executor plugin runs `scontrol show config` at import),
# so after `stop` the rest of the test suite is as fast as on a machine without SLURM.
set -euo pipefail

DIR=${TWINFLOW_SLURM_DIR:-/tmp/twinflow-slurm}
CONF=$DIR/slurm.conf
HOST=$(hostname -s)
CTLD_PORT=${TWINFLOW_SLURM_PORT:-6817}
SLURMD_PORT=$((CTLD_PORT + 1))
MUNGE_SOCKET=/run/munge/munge.socket.2
MUNGE_PID=/run/munge/munged.pid

say() { echo "cluster.sh: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# Daemons remove their pid file and /proc entry when they exit, at any moment: read them with
# `read` (a failed redirection there is a plain failure; in `$(<file)` it would end the script).
read_pid() { # read_pid PIDFILE: print the pid, fail if there is none
    local pid
    { read -r pid <"$1"; } 2>/dev/null || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    echo "$pid"
}

alive() { # alive PIDFILE NAME: the pid in PIDFILE runs a process called NAME
    local pid comm
    pid=$(read_pid "$1") || return 1
    { read -r comm <"/proc/$pid/comm"; } 2>/dev/null || return 1
    [[ $comm == "$2"* ]]
}

stop_pid() { # stop_pid PIDFILE NAME: TERM the daemon by its pid, wait, KILL if it lingers
    local pidfile=$1 name=$2 pid
    if ! alive "$pidfile" "$name"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(read_pid "$pidfile") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        alive "$pidfile" "$name" || break
        sleep 0.1
    done
    if alive "$pidfile" "$name"; then
        say "$name (pid $pid) ignored TERM for 10 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    say "stopped $name (pid $pid)"
}

ensure_packages() {
    local missing=()
    for exe in /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/sbin/munged; do
        [[ -x $exe ]] || missing+=("$exe")
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install SLURM and munge"
    [[ $EUID -eq 0 ]] || die "installing SLURM needs root"
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    # Debian's post-install scripts try to start the services; without systemd that fails harmlessly.
    apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null ||
        { apt-get update -q >/dev/null && apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null; }
}

munge_answers() { munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; }

start_munge() {
    if munge_answers; then
        say "munged already answers; using it"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        install -d -o munge -g munge -m0700 /etc/munge
        runuser -u munge -- /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
    fi
    install -d -o munge -g munge -m0755 /run/munge
    install -d -o munge -g munge -m0700 /var/lib/munge /var/log/munge
    runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --pid-file="$MUNGE_PID"
    for _ in $(seq 1 50); do
        munge_answers && break
        sleep 0.1
    done
    munge_answers || die "munged does not answer (see /var/log/munge/munged.log)"
    touch "$DIR/munged.ours" # stop only a munged that this script started
}

write_config() {
    local node mem
    getent hosts "$HOST" >/dev/null || die "hostname '$HOST' does not resolve: add it to /etc/hosts"
    # Hardware line as slurmd sees it, with RealMemory lowered to 85 % so the node is never
    # drained for "low RealMemory".
    node=$(slurmd -C | head -n1)
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    node=${node/RealMemory=$mem/RealMemory=$((mem * 85 / 100))}
    cat >"$CONF" <<EOF
# Written by tests/slurm/cluster.sh: a single-node test cluster. Clients use SLURM_CONF=$CONF.
ClusterName=twinflow-test
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
ReturnToService=2
# Finished jobs stay visible to squeue/scontrol for an hour: the executor plugin polls with
# squeue (no slurmdbd here) and the tests inspect submitted jobs with scontrol.
MinJobAge=3600
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Every finished job, one line each (JobId, Name, JobState, ...): a record of all submissions.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
GresTypes=gpu
$node Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$DIR/gres.conf" <<EOF
# One fake GPU: schedulable, not usable (jobs see CUDA_VISIBLE_DEVICES=0, CUDA stays unavailable).
AutoDetect=off
NodeName=$HOST Name=gpu File=/dev/null
EOF
}

node_state() { SLURM_CONF=$CONF sinfo -h -n "$HOST" -o %t 2>/dev/null || true; }

wait_idle() {
    local state t0=$SECONDS
    while ((SECONDS - t0 < 30)); do
        state=$(node_state)
        case $state in
            idle | mix | alloc) return 0 ;;
            *down* | *drain* | *inval* | *fail*)
                SLURM_CONF=$CONF scontrol update nodename="$HOST" state=resume 2>/dev/null || true
                ;;
        esac
        sleep 0.2
    done
    die "node $HOST not idle after 30 s (state '${state:-?}'); see $DIR/slurmctld.log and $DIR/slurmd.log"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

cmd_start() {
    [[ $EUID -eq 0 ]] || die "the test cluster runs as root"
    ensure_packages
    mkdir -p "$DIR"
    if alive "$DIR/slurmctld.pid" slurmctld && alive "$DIR/slurmd.pid" slurmd; then
        say "already running"
        wait_idle
        echo "export SLURM_CONF=$CONF"
        return 0
    fi
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        port_busy "$port" && die "port $port is in use (another SLURM?); set TWINFLOW_SLURM_PORT"
    done
    install -d -m0755 "$DIR/state" "$DIR/spool"
    write_config
    start_munge
    # -c: start from a clean state (no jobs left from an earlier test run).
    alive "$DIR/slurmctld.pid" slurmctld || SLURM_CONF=$CONF /usr/sbin/slurmctld -c -f "$CONF"
    alive "$DIR/slurmd.pid" slurmd || SLURM_CONF=$CONF /usr/sbin/slurmd -f "$CONF"
    wait_idle
    say "cluster up: node $HOST idle, partition debug, 1 GPU (gres), config $CONF"
    echo "export SLURM_CONF=$CONF"
}

cmd_stop() {
    if [[ -s $CONF ]] && alive "$DIR/slurmctld.pid" slurmctld; then
        local ids
        ids=$(SLURM_CONF=$CONF squeue -h -t pending,running,suspended -o %i 2>/dev/null || true)
        if [[ -n $ids ]]; then
            # shellcheck disable=SC2086
            SLURM_CONF=$CONF scancel $ids || true
            for _ in $(seq 1 50); do
                [[ -z $(SLURM_CONF=$CONF squeue -h -t running -o %i 2>/dev/null) ]] && break
                sleep 0.2
            done
        fi
    fi
    stop_pid "$DIR/slurmd.pid" slurmd
    stop_pid "$DIR/slurmctld.pid" slurmctld
    if [[ -e $DIR/munged.ours ]]; then
        stop_pid "$MUNGE_PID" munged
        rm -f "$DIR/munged.ours"
    fi
}

cmd_status() {
    local rc=0
    for d in slurmctld slurmd; do
        if alive "$DIR/$d.pid" "$d"; then echo "$d: running (pid $(read_pid "$DIR/$d.pid"))"; else
            echo "$d: stopped"
            rc=3
        fi
    done
    if munge_answers; then echo "munged: answering"; else
        echo "munged: not answering"
        rc=3
    fi
    if ((rc == 0)); then
        echo "node $HOST: $(node_state)"
        SLURM_CONF=$CONF squeue || true
    fi
    return $rc
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *)
        echo "usage: $0 start|stop|status|env   (state in \$TWINFLOW_SLURM_DIR, default /tmp/twinflow-slurm)" >&2
        exit 2
        ;;
esac
