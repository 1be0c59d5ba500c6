# shellcheck shell=bash
# A campaign task's first check, sourced by the wrapper (after codes.sh): every upstream task
# it reads (RUN_DIR/tasks/<i>/upstream, one run-wide index a line) must have the marker 0.
#   fcg_check_upstream RUN_DIR TASK_DIR
# Returns 0 when there is no upstream file or every marker is 0; otherwise says which task
# did not succeed and returns FCG_EXIT_UPSTREAM, or FCG_EXIT_UPSTREAM_WAIT when the task's
# step waits for a rerun (TASK_DIR/upstream_wait); the wrapper writes it as the task's marker.
fcg_check_upstream() {
    local run_dir=$1 dir=$2 up code
    [ -f "$dir/upstream" ] || return 0
    while IFS= read -r up; do
        [ -n "$up" ] || continue
        code=$(cat "$run_dir/tasks/$up/exit_code" 2>/dev/null) || code=missing
        if [ "$code" != 0 ] && [ -f "$dir/upstream_wait" ]; then
            echo "== fcgtainer: not run yet: upstream task $up exit code $code; this task" \
                "waits (on_upstream_failure: wait) and runs when that task is rerun" \
                "(fcgtainer resubmit RUN)"
            return "$FCG_EXIT_UPSTREAM_WAIT"
        elif [ "$code" != 0 ]; then
            echo "== fcgtainer: not run: upstream task $up exit code $code (upstream failed)"
            return "$FCG_EXIT_UPSTREAM"
        fi
    done < "$dir/upstream"
    return 0
}
