#!/bin/sh
# Supervises the orch node {{ name }} ({{ role }}) of cluster {{ cluster }} on a host without
# systemd: runs it, restarts it a second after it exits, and stops it on TERM. Written by
# `orch up` (started detached with setsid), removed by `orch destroy`. Do not edit.
# TLS files (sha256): {{ tls }}
cd {{ install_dir }} || exit 1
echo $$ > {{ supervisor_pid }}
child=
stop() {
    if [ -n "$child" ]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child"
    fi
    rm -f {{ node_pid }} {{ supervisor_pid }}
    exit 0
}
trap stop TERM INT HUP
while :; do
    echo "$(date -u '+%Y-%m-%dT%H:%M:%SZ') orch-supervise: starting {{ name }}" >> {{ log }}
    {{ command }} >> {{ log }} 2>&1 &
    child=$!
    echo "$child" > {{ node_pid }}
    wait "$child"
    status=$?
    echo "$(date -u '+%Y-%m-%dT%H:%M:%SZ') orch-supervise: {{ name }} exited ($status); restarting in 1s" >> {{ log }}
    child=
    sleep 1
done
