# shellcheck shell=bash
# A task's own files from the run's task table (fcgtainer.tasktable), sourced by the wrapper:
# when the task first starts, its lines of RUN_DIR/table/ become tasks/<i>/spec.json, argv,
# retries, max_requeues, walltime, signal_margin, upstream and, for a step that waits when an
# upstream task failed, upstream_wait (argv last: its presence says the copy is whole). A later attempt finds them there and copies nothing.
#   fcg_materialise RUN_DIR INDEX
# Returns non-zero, saying why, when the table has no line for the task.
FCG_TABLE_CHUNK=1000  # fcgtainer.tasktable.CHUNK

fcg_materialise() {
    local run_dir=$1 idx=$2 dir chunk line tmp retries max_requeues walltime margin upstream
    dir="$run_dir/tasks/$idx"
    [ -f "$dir/argv" ] && return 0
    chunk="$run_dir/table/$(( idx / FCG_TABLE_CHUNK ))"
    line=$(( idx % FCG_TABLE_CHUNK + 1 ))
    mkdir -p "$dir" || return 1
    tmp="$dir/.table.$$"
    read -r retries max_requeues walltime margin upstream \
        < <(sed -n "${line}{p;q}" "$chunk.task" 2>/dev/null)
    if [ -z "${margin:-}" ]; then
        echo "== fcgtainer: task $idx: no line $line in $chunk.task (the run's task table)" >&2
        return 1
    fi
    printf '%s\n' "$retries" > "$dir/retries"
    printf '%s\n' "$max_requeues" > "$dir/max_requeues"
    printf '%s\n' "$walltime" > "$dir/walltime"
    printf '%s\n' "$margin" > "$dir/signal_margin"
    case $upstream in
        wait | "wait "*) : > "$dir/upstream_wait"; upstream=${upstream#wait} ;;
    esac
    if [ -n "${upstream// /}" ]; then
        # shellcheck disable=SC2086  # one run-wide index a line: the words are digits
        printf '%s\n' $upstream > "$dir/upstream"
    fi
    sed -n "${line}{p;q}" "$chunk.spec" > "$tmp" || return 1
    mv -f "$tmp" "$dir/spec.json" || return 1
    if ! sed -n "${line}{p;q}" "$chunk.argv" | base64 -d > "$tmp" || [ ! -s "$tmp" ]; then
        echo "== fcgtainer: task $idx: no argv at line $line of $chunk.argv" >&2
        rm -f "$tmp"
        return 1
    fi
    mv -f "$tmp" "$dir/argv"
}
