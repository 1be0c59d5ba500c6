#!/bin/bash
# fcgtainer job wrapper: runs one task of a run, whatever the scheduler.
#   RUN_DIR/wrapper.sh RUN_DIR TASK_INDEX
# Copies the task's lines of the run's task table into tasks/<i>/ (table.sh), reads its argv
# (NUL-separated, written at submit time: no shell parsing of values),
# runs it with SIGUSR2/SIGTERM/SIGINT forwarded to the payload (which checkpoints and exits
# 85), asks SLURM to requeue when the payload checkpointed or may be retried, and writes the
# exit-code marker atomically. The shared checks are in RUN_DIR/node/ (codes.sh, lib.sh).
# Where the scheduler sends no signal before the walltime (HTCondor, local), a timer here
# sends SIGUSR2 signal_margin seconds before it, so a checkpointing payload saves and exits
# 85 everywhere. Requeues after exit 85 are counted in tasks/<i>/requeues and bounded by
# tasks/<i>/max_requeues on every backend. The payload sees its attempt number in
# FCGTAINER_ATTEMPT and in spec.json. Under node/bundle.sh (FCG_IN_BUNDLE=1) the bundle
# counts attempts and retries, and nothing is requeued.
set -u
run_dir=$1
idx=$2
# shellcheck source=codes.sh
. "$run_dir/node/codes.sh"
# shellcheck source=lib.sh
. "$run_dir/node/lib.sh"
# shellcheck source=upstream.sh
. "$run_dir/node/upstream.sh"
# shellcheck source=table.sh
. "$run_dir/node/table.sh"
dir="$run_dir/tasks/$idx"
# what the task writes is as private as its run directory (0700, or 0750 with share_group)
case $(stat -c %a "$run_dir" 2>/dev/null) in 75*) umask 027 ;; *) umask 077 ;; esac
if [ -n "${FCG_IN_BUNDLE:-}" ]; then  # node/bundle.sh counts a bundled task's attempts
    attempt=$(( ${FCGTAINER_ATTEMPT:-0} + 1 ))
else
    attempt=$(( ${SLURM_RESTART_COUNT:-${FCGTAINER_ATTEMPT:-0}} + 1 ))
fi
mkdir -p "$dir"
exec >>"$dir/task.log" 2>&1   # every attempt appends: the first attempt's log is kept
# the task's spec, argv and bounds: its lines of the run's task table, copied once
if ! fcg_materialise "$run_dir" "$idx"; then
    printf '%s\n' "$FCG_EXIT_CONFIG" > "$dir/exit_code.tmp.$$" \
        && mv -f "$dir/exit_code.tmp.$$" "$dir/exit_code"
    exit "$FCG_EXIT_CONFIG"
fi
mapfile -d '' -t argv < "$dir/argv"
# a campaign task first checks the markers of the upstream tasks it reads: one missing or
# non-zero -> its marker says "upstream failed" (or "waiting on upstream") and the payload
# does not run
fcg_check_upstream "$run_dir" "$dir"
rc=$?
if [ "$rc" -ne 0 ]; then
    printf '%s\n' "$rc" > "$dir/exit_code.tmp.$$" && mv -f "$dir/exit_code.tmp.$$" "$dir/exit_code"
    exit "$rc"
fi
# the attempt number, as the payload sees it: the argv's FCGTAINER_ATTEMPT=1 and the spec's
for i in "${!argv[@]}"; do
    case ${argv[$i]} in FCGTAINER_ATTEMPT=[0-9]*) argv[i]="FCGTAINER_ATTEMPT=$attempt" ;; esac
done
if [ -f "$dir/spec.json" ]; then  # one line, "attempt" its first key (fcgtainer.tasktable)
    sed -E "1s/^\\{\"attempt\": [0-9]+/{\"attempt\": $attempt/" "$dir/spec.json" \
        > "$dir/.spec.json.$$" && mv -f "$dir/.spec.json.$$" "$dir/spec.json"
fi
mkdir -p "$run_dir/out/$idx"
cd "$run_dir/out/$idx" || exit "$FCG_EXIT_CONFIG"
# room for the attempt's record and marker, given back for them if the payload fills the disk
rm -f "$dir/no_space"
head -c 65536 /dev/urandom > "$dir/.reserve" 2>/dev/null || rm -f "$dir/.reserve"
start=$(date +%s)
echo "== fcgtainer: task $idx attempt $attempt on $(hostname) at $(date -u +%FT%TZ)"

number() { local v; v=$(cat "$1" 2>/dev/null) || v=$2; case $v in '' | *[!0-9]*) v=$2 ;; esac; echo "$v"; }
walltime=$(number "$dir/walltime" 0)
margin=$(number "$dir/signal_margin" 0)
timer=
if [ -z "${SLURM_JOB_ID:-}" ] && [ "$walltime" -gt 0 ] && [ "$margin" -gt 0 ]; then
    delay=$(( walltime - margin ))
    [ "$delay" -ge 1 ] || delay=1
    (
        sleep "$delay" &
        nap=$!
        trap 'kill "$nap" 2>/dev/null; exit 0' TERM
        wait "$nap"
        echo "== fcgtainer: $margin s before the walltime of $walltime s: asking the payload" \
            "to checkpoint (SIGUSR2)"
        kill -USR2 "$$"
    ) &
    timer=$!
fi

FCG_FORWARD_NOTE="== fcgtainer" fcg_run_forwarding "${argv[@]}"
rc=$?
[ -z "$timer" ] || kill "$timer" 2>/dev/null

# On a full disk (or a used-up quota) these writes fail: the reserve is freed and each is
# tried again; tasks/<i>/no_space keeps the error ("No space left on device") for status.
line="$attempt $(hostname) $start $(date +%s) $rc"
full=
if ! err=$( { printf '%s\n' "$line" >> "$dir/attempts"; } 2>&1 ); then
    full=${err##*: } && rm -f "$dir/.reserve"
    printf '%s\n' "$line" >> "$dir/attempts"
fi
if ! err=$( { printf '%s\n' "$rc" > "$dir/exit_code.tmp.$$"; } 2>&1 ); then
    full=${err##*: } && rm -f "$dir/.reserve"
    printf '%s\n' "$rc" > "$dir/exit_code.tmp.$$"
fi && mv -f "$dir/exit_code.tmp.$$" "$dir/exit_code"
if [ -n "$full" ]; then
    printf '%s\n' "$full" > "$dir/no_space"
    echo "== fcgtainer: no room left in $run_dir ($full)"
fi
rm -f "$dir/.reserve"
echo "== fcgtainer: task $idx attempt $attempt exited $rc"

# bounded requeues: a payload that always checkpoints is not restarted forever
requeue_ok=0
if [ "$rc" -eq "$FCG_EXIT_REQUEUE" ]; then
    done_requeues=$(number "$dir/requeues" 0)
    if [ "$done_requeues" -lt "$(number "$dir/max_requeues" 20)" ]; then
        requeue_ok=1
        printf '%s\n' $(( done_requeues + 1 )) > "$dir/.requeues.$$" \
            && mv -f "$dir/.requeues.$$" "$dir/requeues"
    else
        echo "== fcgtainer: requeued $done_requeues times: max_requeues reached, not again"
        : > "$dir/requeue_limit"
    fi
fi

retries=$(number "$dir/retries" 0)
# in a bundle the bundle retries (a requeue would rerun the whole bundle)
if [ -n "${SLURM_JOB_ID:-}" ] && [ -z "${FCG_IN_BUNDLE:-}" ]; then
    requeue=$requeue_ok
    case "$rc" in
        0 | "$FCG_EXIT_CONFIG" | "$FCG_EXIT_REQUEUE" | "$FCG_EXIT_NO_GPU" | "$FCG_EXIT_NO_CVMFS" \
            | "$FCG_EXIT_UPSTREAM" | "$FCG_EXIT_UPSTREAM_WAIT") ;;
        *) [ "$attempt" -le "$retries" ] && requeue=1 ;;
    esac
    if [ "$requeue" -eq 1 ]; then
        echo "== fcgtainer: requeueing (attempt $attempt, exit $rc)"
        scontrol requeue "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID:-0}" \
            2>/dev/null || scontrol requeue "$SLURM_JOB_ID"
    fi
fi
# HTCondor restarts a job that exits 85 (checkpoint_exit_code): past max_requeues it must not
[ "$rc" -eq "$FCG_EXIT_REQUEUE" ] && [ "$requeue_ok" -eq 0 ] && exit "$FCG_EXIT_CONFIG"
exit "$rc"
