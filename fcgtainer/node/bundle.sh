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
set -u
run_dir=$1
leader=$2
# shellcheck source=codes.sh
. "$run_dir/node/codes.sh"
members=$(awk -v l="$leader" '$1 == l { line = $0 } END { print line }' \
    "$run_dir/bundles.txt" 2>/dev/null)
if [ -z "$members" ]; then
    echo "== fcgtainer: bundle $leader: no line for it in $run_dir/bundles.txt" >&2
    exit "$FCG_EXIT_CONFIG"
fi
count() { local n; n=$(wc -l < "$1" 2>/dev/null) || n=0; echo "${n:-0}"; }
number() { local v; v=$(cat "$1" 2>/dev/null) || v=$2; case $v in '' | *[!0-9]*) v=$2 ;; esac; echo "$v"; }
mkdir -p "$run_dir/tasks/$leader" 2>/dev/null
for idx in $members; do
    case $idx in '' | *[!0-9]*) continue ;; esac
    [ "$(cat "$run_dir/tasks/$idx/exit_code" 2>/dev/null)" = 0 ] && continue
    # which task the bundle runs now: `status` shows the tasks after it as pending
    printf '%s\n' "$idx" > "$run_dir/tasks/$leader/bundle_now" 2>/dev/null
    tries=0
    while [ "$tries" -le "$(number "$run_dir/tasks/$idx/retries" 0)" ]; do
        tries=$(( tries + 1 ))
        # the attempt number the wrapper gives the payload: one more than the attempts so far
        FCG_IN_BUNDLE=1 FCGTAINER_ATTEMPT=$(count "$run_dir/tasks/$idx/attempts") \
            /bin/bash "$run_dir/wrapper.sh" "$run_dir" "$idx"
        rc=$?
        case $rc in
            0 | "$FCG_EXIT_CONFIG" | "$FCG_EXIT_REQUEUE" | "$FCG_EXIT_NO_GPU" | "$FCG_EXIT_NO_CVMFS" \
                | "$FCG_EXIT_UPSTREAM" | "$FCG_EXIT_UPSTREAM_WAIT") break ;;
        esac
        [ "$(count "$run_dir/tasks/$idx/attempts")" -le "$(number "$run_dir/tasks/$idx/retries" 0)" ] \
            || break
    done
done
exit 0
