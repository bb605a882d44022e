#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the SLURM tests (tests/runs/test_slurm.py), which
# start it only when asked: PEFTLAB_SLURM_TESTS=1 (`make test-all` and .ci/run set it).
#
#   scripts/slurm_cluster.sh start    install the Debian packages when missing, write the configs,
#                                     start munge, MariaDB, slurmdbd, slurmctld, slurmd; wait for `idle`
#   scripts/slurm_cluster.sh stop     stop every daemon it started and remove their pid files
#   scripts/slurm_cluster.sh status   print `sinfo`
#
# Needs root, apt-get and no systemd (containers, CI runners). Packages: slurmctld slurmd
# slurm-client munge (Slurm 22.05 on Debian 12) plus slurmdbd mariadb-server for accounting:
# without it `sacct` fails and submitit cannot see jobs that died. No cgroups are used
# (proctrack/linuxproc, task/none), so it also runs inside containers.
set -euo pipefail

PACKAGES=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
PARTITION=debug
DB_PASS=peftlab-slurm
HOST=$(hostname -s)
LOG=/var/log/slurm

die() { echo "slurm_cluster: $*" >&2; exit 1; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "apt-get not found; cannot install ${missing[*]}"
    # Keep the packages' init scripts from starting daemons during the install.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
    return 0
}

write_configs() {
    mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd "$LOG" /run/munge
    chown -R slurm:slurm /var/lib/slurm "$LOG"
    chown munge:munge /run/munge
    # `slurmd -C` prints this machine's CPUs/sockets/cores/threads; keep ~90 % of its memory.
    local node mem
    node=$(slurmd -C | head -1)
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
    node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/" <<<"$node")
    cat >/etc/slurm/slurm.conf <<EOF
# Written by scripts/slurm_cluster.sh: one node on localhost, no cgroups, accounting via slurmdbd.
ClusterName=peftlab
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOG}/slurmctld.log
SlurmdLogFile=${LOG}/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
KillWait=10
MinJobAge=300
${node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=${HOST} Default=YES MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/slurmdbd.conf <<EOF
# Written by scripts/slurm_cluster.sh.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=${LOG}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=${DB_PASS}
StorageLoc=slurm_acct_db
EOF
    chown slurm:slurm /etc/slurm/slurmdbd.conf
    chmod 600 /etc/slurm/slurmdbd.conf
    [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || /usr/sbin/create-munge-key -f >/dev/null; }
    chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
}

wait_for() {  # wait_for <seconds> <what> <command...>
    local seconds=$1 what=$2; shift 2
    local i
    for ((i = 0; i < seconds * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
    die "timed out after ${seconds}s waiting for $what (logs: $LOG)"
}

node_idle() { [ "$(sinfo -h -o %t 2>/dev/null | head -1)" = idle ]; }

start() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    install_packages
    write_configs
    [ -s /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null || runuser -u munge -- /usr/sbin/munged
    wait_for 10 munge munge -n
    /etc/init.d/mariadb start >/dev/null
    wait_for 30 MariaDB mysqladmin ping
    mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '${DB_PASS}';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
    [ -s /run/slurmdbd.pid ] && kill -0 "$(cat /run/slurmdbd.pid)" 2>/dev/null || { rm -f /run/slurmdbd.pid; /usr/sbin/slurmdbd; }
    wait_for 30 slurmdbd sacctmgr -n list cluster
    [ -s /run/slurmctld.pid ] && kill -0 "$(cat /run/slurmctld.pid)" 2>/dev/null || { rm -f /run/slurmctld.pid; /usr/sbin/slurmctld; }
    wait_for 30 slurmctld scontrol ping
    [ -s /run/slurmd.pid ] && kill -0 "$(cat /run/slurmd.pid)" 2>/dev/null || { rm -f /run/slurmd.pid; /usr/sbin/slurmd; }
    wait_for 60 "node ${HOST} idle" node_idle
    echo "slurm_cluster: up: partition ${PARTITION}, node ${HOST} ($(sinfo -h -o '%c CPUs'))"
}

stop_pidfile() {
    local file=$1 pid i
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
        for ((i = 0; i < 80; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

stop() {
    # Cancel leftover jobs first so no job step outlives the cluster.
    command -v scancel >/dev/null && scancel --user=root --full >/dev/null 2>&1 || true
    stop_pidfile /run/slurmd.pid
    stop_pidfile /run/slurmctld.pid
    stop_pidfile /run/slurmdbd.pid
    [ -x /etc/init.d/mariadb ] && /etc/init.d/mariadb stop >/dev/null 2>&1 || true
    stop_pidfile /run/munge/munged.pid
    echo "slurm_cluster: stopped"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) sinfo ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
