#!/bin/bash
# fcgtainer job wrapper: runs one task of a run, whatever the scheduler.
#   wrapper.sh RUN_DIR TASK_INDEX
# Reads the task's argv (NUL-separated, written at submit time: no shell parsing of values),
# runs it in the background so that signals reach this script, forwards SIGUSR2/SIGTERM/SIGINT
# to the payload (which checkpoints and exits 85), waits for it, asks SLURM to requeue when
# the payload checkpointed or may be retried, and writes the exit-code marker atomically.
set -u
run_dir=$1
idx=$2
dir="$run_dir/tasks/$idx"
attempt=$(( ${SLURM_RESTART_COUNT:-${FCGTAINER_ATTEMPT:-0}} + 1 ))
exec >>"$dir/task.log" 2>&1   # every attempt appends: the first attempt's log is kept
mapfile -d '' -t argv < "$dir/argv"
mkdir -p "$run_dir/out/$idx"
cd "$run_dir/out/$idx" || exit 2
start=$(date +%s)
echo "== fcgtainer: task $idx attempt $attempt on $(hostname) at $(date -u +%FT%TZ)"

child=""
forward() {
    echo "== fcgtainer: got SIG$1, forwarding to the payload"
    [ -n "$child" ] && kill -s "$1" "$child" 2>/dev/null
}
trap 'forward USR2' USR2
trap 'forward TERM' TERM
trap 'forward INT' INT

"${argv[@]}" &
child=$!
while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done
# a trapped signal interrupts wait with 128+n: ask once more for the child's own status
wait "$child" 2>/dev/null && rc=0 || { r=$?; [ "$r" -ne 127 ] && rc=$r; }

printf '%s %s %s %s %s\n' "$attempt" "$(hostname)" "$start" "$(date +%s)" "$rc" >> "$dir/attempts"
printf '%s\n' "$rc" > "$dir/exit_code.tmp.$$" && mv -f "$dir/exit_code.tmp.$$" "$dir/exit_code"
echo "== fcgtainer: task $idx attempt $attempt exited $rc"

retries=$(cat "$dir/retries" 2>/dev/null || echo 0)
if [ -n "${SLURM_JOB_ID:-}" ]; then
    requeue=0
    [ "$rc" -eq 85 ] && requeue=1
    case "$rc" in 0|2|85|86|87) ;; *) [ "$attempt" -le "$retries" ] && requeue=1 ;; esac
    if [ "$requeue" -eq 1 ]; then
        echo "== fcgtainer: requeueing (attempt $attempt, exit $rc)"
        scontrol requeue "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID:-0}" \
            2>/dev/null || scontrol requeue "$SLURM_JOB_ID"
    fi
fi
exit "$rc"
