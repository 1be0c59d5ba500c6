# shellcheck shell=sh
# The node-side checks of fcgtainer, once: sourced (after codes.sh) by the launcher
# (launch.sh), the in-container check (inner.sh), the job wrapper (wrapper.sh), the image's
# runscript (run.sh) and `fcgtainer doctor` (probe.sh). POSIX sh: inner.sh runs in any image.

# fcg_die CODE MESSAGE: print "fcgtainer: MESSAGE" on stderr and exit with CODE.
fcg_die() {
    echo "fcgtainer: $2" >&2
    exit "$1"
}

# fcg_probe PATH TENTHS: "ok", "missing" or "hung". A hung automount blocks whoever touches
# it: the listing runs in the background and is killed (never waited for) after TENTHS
# tenths of a second.
fcg_probe() {
    ( ls "$1/" >/dev/null 2>&1 ) &
    fcg_pid=$!
    fcg_waited=0
    while kill -0 "$fcg_pid" 2>/dev/null; do
        if [ "$fcg_waited" -ge "$2" ]; then
            kill -9 "$fcg_pid" 2>/dev/null
            echo hung
            return 0
        fi
        sleep 0.1
        fcg_waited=$((fcg_waited + 1))
    done
    if wait "$fcg_pid"; then echo ok; else echo missing; fi
}

# fcg_fuse: "ok" when /dev/fuse is usable by this user, else "absent" or "closed".
fcg_fuse() {
    if [ ! -c /dev/fuse ]; then
        echo absent
    elif [ -r /dev/fuse ] && [ -w /dev/fuse ]; then
        echo ok
    else
        echo closed
    fi
}

# fcg_squashfuse: the path of squashfuse_ll or squashfuse, or nothing (status 1).
fcg_squashfuse() {
    command -v squashfuse_ll || command -v squashfuse
}

# fcg_image_mode UNPACK: "mount" or "unpack REASON" for a SIF, given the site's
# apptainer.unpack (auto: mount when FUSE and squashfuse are usable, else unpack once).
fcg_image_mode() {
    case $1 in
        always) echo "unpack site says always"; return 0 ;;
        never) echo mount; return 0 ;;
    esac
    if [ "$(fcg_fuse)" != ok ]; then
        echo "unpack /dev/fuse not usable"
    elif ! fcg_squashfuse >/dev/null; then
        echo "unpack squashfuse missing"
    else
        echo mount
    fi
}

# fcg_gpus: the GPUs nvidia-smi lists ("GPU 0: ..."), nothing when none is visible.
fcg_gpus() {
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    nvidia-smi -L 2>/dev/null | grep '^GPU' || true
}

# fcg_check_gpus COUNT: exit 86 when COUNT > 0 GPUs are requested and none is visible.
fcg_check_gpus() {
    if [ "$1" -gt 0 ] && [ -z "$(fcg_gpus)" ]; then
        fcg_die "$FCG_EXIT_NO_GPU" "$1 GPU(s) requested but none is visible on $(uname -n)"
    fi
}

# fcg_lcg_view VIEW: set up an LCG view from /cvmfs/sft.cern.ch (exit 87 when it is not
# there). Sourced into the caller's shell, so its environment stays.
fcg_lcg_view() {
    [ -n "$1" ] || return 0
    fcg_setup=/cvmfs/sft.cern.ch/lcg/views/$1/setup.sh
    [ -r "$fcg_setup" ] || fcg_die "$FCG_EXIT_NO_CVMFS" "LCG view $1: $fcg_setup not found"
    # shellcheck disable=SC1090
    . "$fcg_setup" || fcg_die "$FCG_EXIT_NO_CVMFS" "LCG view $1: sourcing $fcg_setup failed"
}

# fcg_cvmfsexec_smoke CVMFSEXEC LOG TIMEOUT REPO...: does `cvmfsexec REPO... -- /bin/true`
# mount them within TIMEOUT seconds? On failure, show the end of its output (kept in LOG).
fcg_cvmfsexec_smoke() {
    fcg_exe=$1 fcg_log=$2 fcg_limit=$3
    shift 3
    if timeout -k 5 "$fcg_limit" "$fcg_exe" "$@" -- /bin/true >"$fcg_log" 2>&1; then
        rm -f "$fcg_log"
        return 0
    fi
    tail -n 5 "$fcg_log" >&2
    rm -f "$fcg_log"
    return 1
}

# fcg_run_forwarding CMD...: run CMD in the background, forward SIGUSR2, SIGTERM and SIGINT
# to it (the payload checkpoints and exits 85), wait for it and return its exit status.
# FCG_FORWARD_NOTE, when set, is printed for every forwarded signal; fcg_got names the last
# signal forwarded (empty when none was).
fcg_run_forwarding() {
    fcg_child=
    fcg_got=
    trap 'fcg_forward USR2' USR2
    trap 'fcg_forward TERM' TERM
    trap 'fcg_forward INT' INT
    "$@" &
    fcg_child=$!
    while :; do
        wait "$fcg_child"
        fcg_rc=$?
        kill -0 "$fcg_child" 2>/dev/null || break
    done
    # a trapped signal interrupts wait with 128+n: ask once more for the child's own status
    if wait "$fcg_child" 2>/dev/null; then
        fcg_rc=0
    else
        fcg_last=$?
        [ "$fcg_last" -eq 127 ] || fcg_rc=$fcg_last
    fi
    trap - USR2 TERM INT
    return "$fcg_rc"
}

fcg_forward() {
    # shellcheck disable=SC2034  # read by the caller of fcg_run_forwarding
    fcg_got=$1
    [ -z "${FCG_FORWARD_NOTE:-}" ] || echo "$FCG_FORWARD_NOTE: got SIG$1, forwarding it"
    [ -z "$fcg_child" ] || kill -s "$1" "$fcg_child" 2>/dev/null || true
}
