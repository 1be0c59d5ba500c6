#!/bin/bash
# fcgtainer bundle: runs the tasks of one bundle (`bundle: N`) in turn in ONE scheduler job.
#   RUN_DIR/node/bundle.sh RUN_DIR LEADER
# The bundle's tasks are on the last line of RUN_DIR/bundles.txt that starts with LEADER
# ("LEADER MEMBER..."; the leader is the first member), written at submit before sbatch.
# Each task goes through the ordinary wrapper (its own table lines, marker, task.log and
# attempts); a task whose marker is already 0 (the bundle job was requeued) is skipped; a
# failed task is tried again here up to its `retries` (never a scheduler requeue: that would
# rerun the whole bundle), and what still fails is rerun alone by `fcgtainer resubmit`.
# The task it runs now is in tasks/LEADER/bundle_now (status shows the tasks after it as
# pending). The bundle job itself exits 0: the markers, not its exit code, say how each
# task ended.
# One container start per bundle: when its first task to run is an Apptainer task, its
# launcher options (all but the task's own environment) start an apptainer instance
# (launch.sh --mode start), and every task of the bundle with the same options runs in it
# (launch.sh joins FCG_INSTANCE), each with its own environment. The instance is stopped
# when the bundle ends, on SIGTERM/SIGINT/SIGHUP too. Where it cannot start (native tasks,
# cvmfsexec, an error) or a task's options differ, a task starts its own container. An
# instance found gone after a task failed (killed on the node) is started again, and that
# task runs again in the new one, once (its failed attempt stays in its record).
set -u
run_dir=$1
leader=$2
# shellcheck source=codes.sh
. "$run_dir/node/codes.sh"
# shellcheck source=lib.sh
. "$run_dir/node/lib.sh"
# shellcheck source=table.sh
. "$run_dir/node/table.sh"
members=$(awk -v l="$leader" '$1 == l { line = $0 } END { print line }' \
    "$run_dir/bundles.txt" 2>/dev/null)
if [ -z "$members" ]; then
    echo "== fcgtainer: bundle $leader: no line for it in $run_dir/bundles.txt" >&2
    exit "$FCG_EXIT_CONFIG"
fi
count() { local n; n=$(wc -l 2>/dev/null < "$1") || n=0; echo "${n:-0}"; }
number() { local v; v=$(cat "$1" 2>/dev/null) || v=$2; case $v in '' | *[!0-9]*) v=$2 ;; esac; echo "$v"; }
# as the wrapper: what the tasks' files are as private as their run directory
case $(stat -c %a "$run_dir" 2>/dev/null) in 75*) umask 027 ;; *) umask 077 ;; esac
mkdir -p "$run_dir/tasks/$leader" 2>/dev/null
todo=()
for idx in $members; do
    case $idx in '' | *[!0-9]*) continue ;; esac
    [ "$(cat "$run_dir/tasks/$idx/exit_code" 2>/dev/null)" = 0 ] || todo+=("$idx")
done

# the bundle's container: the options of its first task to run, without --mode and --env
instance='' launcher='' shared=() starts=0
start_instance() {  # with the options of task $1
    local argv i
    shared=()
    [ -n "${1-}" ] && fcg_materialise "$run_dir" "$1" 2>/dev/null || return 0
    mapfile -d '' -t argv < "$run_dir/tasks/$1/argv"
    [ "${argv[0]-}" = /bin/bash ] && [ "${argv[1]-}" = "$run_dir/node/launch.sh" ] || return 0
    for (( i = 2; i + 1 < ${#argv[@]}; i += 2 )); do
        case ${argv[i]} in
            --) break ;;
            --mode | --env) ;;
            *) shared+=("${argv[i]}" "${argv[i + 1]}") ;;
        esac
    done
    launcher=${argv[1]}
    # named before it starts: a signal meanwhile is handled once it has, and stops it
    # (the name ends with this bundle's pid: launch.sh stops it if the bundle is killed)
    starts=$(( starts + 1 ))
    instance="fcgtainer-${SLURM_JOB_ID:-0}-${starts}-$$"
    if /bin/bash "$launcher" "${shared[@]}" --mode start --instance "$instance"; then
        echo "== fcgtainer: bundle $leader: its tasks share apptainer instance $instance" \
            "on $(hostname)" >&2
    else
        instance=''
        echo "== fcgtainer: bundle $leader: each task starts its own container" >&2
    fi
}
instance_gone() {
    [ -n "$instance" ] \
        && ! /bin/bash "$launcher" "${shared[@]}" --mode alive --instance "$instance" 2>/dev/null
}
# shellcheck disable=SC2317  # the EXIT trap calls it
stop_instance() {
    [ -n "$instance" ] || return 0
    /bin/bash "$launcher" "${shared[@]}" --mode stop --instance "$instance" \
        || echo "== fcgtainer: bundle $leader: stopping apptainer instance $instance failed" >&2
    instance=
}
trap stop_instance EXIT
on_signals() { trap 'exit 143' TERM; trap 'exit 130' INT; trap 'exit 129' HUP; }
on_signals
start_instance "${todo[0]-}"
export FCG_IN_BUNDLE=1 FCG_INSTANCE="$instance"

for idx in "${todo[@]+"${todo[@]}"}"; do
    # which task the bundle runs now: `status` shows the tasks after it as pending
    printf '%s\n' "$idx" > "$run_dir/tasks/$leader/bundle_now" 2>/dev/null
    tries=0 restarted=0
    while [ "$tries" -le "$(number "$run_dir/tasks/$idx/retries" 0)" ]; do
        tries=$(( tries + 1 ))
        # the attempt number the wrapper gives the payload: one more than the attempts so far
        export FCGTAINER_ATTEMPT
        FCGTAINER_ATTEMPT=$(count "$run_dir/tasks/$idx/attempts")
        fcg_run_forwarding /bin/bash "$run_dir/wrapper.sh" "$run_dir" "$idx"
        rc=$?
        on_signals
        case $fcg_got in TERM) exit 143 ;; INT) exit 130 ;; esac
        if [ "$rc" -ne 0 ] && [ "$restarted" = 0 ] && instance_gone; then
            echo "== fcgtainer: bundle $leader: apptainer instance $instance is gone" \
                "(killed on the node?): a new one, and task $idx again in it" >&2
            restarted=1 tries=$(( tries - 1 ))
            stop_instance 2>/dev/null  # what is left of it: its workdir on the node
            start_instance "$idx"
            export FCG_INSTANCE="$instance"
            continue
        fi
        case $rc in
            0 | "$FCG_EXIT_CONFIG" | "$FCG_EXIT_REQUEUE" | "$FCG_EXIT_NO_GPU" | "$FCG_EXIT_NO_CVMFS" \
                | "$FCG_EXIT_UPSTREAM" | "$FCG_EXIT_UPSTREAM_WAIT") break ;;
        esac
        [ "$(count "$run_dir/tasks/$idx/attempts")" -le "$(number "$run_dir/tasks/$idx/retries" 0)" ] \
            || break
    done
done
exit 0
