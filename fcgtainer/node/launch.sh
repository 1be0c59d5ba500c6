#!/bin/bash
# fcgtainer's launcher: runs one task (or `fcgtainer shell`) in Apptainer on the compute
# node, deciding there what only the node knows:
#   launch.sh [OPTIONS] -- CMD...
# - node-local scratch (a $NAME / ~ template expanded here, as data) holds the --workdir of
#   --containall and, when FUSE is not usable, the image unpacked ONCE per node (under a
#   lock, reused by later tasks) instead of on every exec;
# - CVMFS, by the site's mode for each repository: --repo-host REPO: the node's /cvmfs,
#   probed (a hung automount times out), absent -> exit 87; --repo-cvmfsexec REPO: always
#   under `cvmfsexec REPO... --` after a smoke test, failing that -> exit 87; --repo REPO
#   (auto): the node's /cvmfs when it answers, else cvmfsexec;
# - GPUs: --nv, and inner.sh exits 86 in the container when none is visible;
# - only the allow-listed environment reaches the container: the contract's values as
#   --env KEY=VALUE, the submitter's (tokens...) from the 0600 --env-file, read by builtins
#   and exported in a cleared subshell, so that no value is ever on a command line;
#   then apptainer exec --cleanenv --containall --no-eval.
# A bundle (node/bundle.sh) shares one container start among its tasks:
# - --mode start --instance NAME: the checks above, then `apptainer instance start` with the
#   binds, scratch and GPUs of these options (no task's environment), its --workdir
#   SCRATCH/fcgtainer-UID/instance.NAME; exit 3 when it cannot be shared (under cvmfsexec);
# - --mode stop --instance NAME: `apptainer instance stop`, the workdir removed;
# - --mode alive --instance NAME: exit 0 while Apptainer still lists instance NAME;
# - --mode exec with FCG_INSTANCE=NAME in the environment: when instance NAME was started
#   with the same options (its key, all but --env, --env-file and --mode), the task runs in
#   it with `apptainer exec ... instance://NAME` and its own environment and --pwd, after
#   the instance's /tmp, /var/tmp and home are emptied; otherwise as above.
# Options (each takes one value): --mode exec|shell|start|stop|alive --instance NAME
#   --apptainer PATH --image PATH
#   --unpack auto|always|never --scratch TEMPLATE --gpus N --cvmfsexec PATH
#   --cvmfs-cache TEMPLATE --probe-timeout S --smoke-timeout S --cvmfs-root DIR --home DIR
#   --lcg-view VIEW --repo REPO... --repo-host REPO... --repo-cvmfsexec REPO...
#   --bind SRC:DST:ro|rw... --env KEY=VALUE... --env-file PATH
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=codes.sh
. "$here/codes.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"

mode=exec apptainer=apptainer image='' unpack=auto scratch='' gpus=0 cvmfsexec=cvmfsexec
cache='' timeout=5 smoke=120 root=/cvmfs home=/ view='' envfile='' instance=''
repos=() hosts=() binds=() envs=() need=() shared=()
while [ $# -gt 0 ]; do
    case $1 in
        --mode | --env | --env-file | --instance | --) ;;
        *) shared+=("$1" "${2-}") ;;  # what a task shares with its bundle's container
    esac
    case $1 in
        --) shift; break ;;
        --instance) instance=$2 ;;
        --mode) mode=$2 ;; --apptainer) apptainer=$2 ;; --image) image=$2 ;;
        --unpack) unpack=$2 ;; --scratch) scratch=$2 ;; --gpus) gpus=$2 ;;
        --cvmfsexec) cvmfsexec=$2 ;; --cvmfs-cache) cache=$2 ;; --probe-timeout) timeout=$2 ;;
        --smoke-timeout) smoke=$2 ;; --cvmfs-root) root=$2 ;; --home) home=$2 ;;
        --lcg-view) view=$2 ;; --repo) repos+=("$2") ;;
        --repo-host) hosts+=("$2") ;; --repo-cvmfsexec) need+=("$2") ;;
        --bind) binds+=("$2") ;; --env) envs+=("$2") ;; --env-file) envfile=$2 ;;
        *) fcg_die "$FCG_EXIT_CONFIG" "launcher: unknown option $1" ;;
    esac
    shift 2
done
HOME=${HOME:-$home}
if [ -n "$envfile" ]; then
    [ -r "$envfile" ] || fcg_die "$FCG_EXIT_CONFIG" \
        "environment: cannot read $envfile on $(uname -n)"
    while IFS= read -r -d '' kv; do envs+=("$kv"); done < "$envfile"
fi

# expand ~ and $NAME / ${NAME} in a path template from this node's environment, as data
expand() {
    local s=$1 out="" name
    # shellcheck disable=SC2088  # a literal ~ in the template, replaced here
    case $s in "~" | "~/"*) s=$HOME${s#"~"} ;; esac
    while [[ $s =~ ^([^$]*)\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?(.*)$ ]]; do
        out+=${BASH_REMATCH[1]}
        name=${BASH_REMATCH[2]}
        out+=${!name-}
        s=${BASH_REMATCH[3]}
    done
    printf '%s' "$out$s"
}
checkpath() {
    case $2 in /*) ;; *) fcg_die "$FCG_EXIT_CONFIG" "$1: '$2' is not an absolute path on $(uname -n)" ;; esac
    case $2 in *[,:]*) fcg_die "$FCG_EXIT_CONFIG" "$1: '$2' contains ',' or ':' (cannot be bound)" ;; esac
}

# node-local scratch: the containall workdir and the once-per-node unpacked images
site_scratch=
if [ -n "$scratch" ]; then
    scratch=$(expand "$scratch")
    [ -n "$scratch" ] || fcg_die "$FCG_EXIT_CONFIG" \
        "scratch: the site's scratch expands to nothing on $(uname -n)"
    checkpath scratch "$scratch"
    site_scratch=$scratch
else
    scratch=${TMPDIR:-/tmp}
fi
node="$scratch/fcgtainer-$UID"
[ -d "$node" ] || mkdir -p "$node" || fcg_die "$FCG_EXIT_CONFIG" "scratch: cannot create $node"

# a bundle's container (apptainer instance): its key says which options it was started with
shared_key=$(printf '%s\0' "${shared[@]+"${shared[@]}"}" | cksum)
named() { case $1 in '' | *[!A-Za-z0-9_.-]*) return 1 ;; esac; }
joined=
case $mode in
    start | stop | alive)
        named "$instance" || fcg_die "$FCG_EXIT_CONFIG" "launcher: bad instance name '$instance'" ;;
    exec)
        if named "${FCG_INSTANCE:-}" \
            && [ "$(cat "$node/instance.$FCG_INSTANCE.key" 2>/dev/null)" = "$shared_key" ]; then
            joined=$FCG_INSTANCE
        fi ;;
esac
# a bundle killed before it could stop its instance (SIGKILL): the next one on the node
# stops it (its name ends with the bundle's pid, gone)
if [ "$mode" = start ]; then
    for stale in "$node"/instance.fcgtainer-*.key; do
        [ -e "$stale" ] || continue
        name=${stale#"$node/instance."} && name=${name%.key}
        case ${name##*-} in '' | *[!0-9]*) continue ;; esac
        kill -0 "${name##*-}" 2>/dev/null && continue
        "$apptainer" -q instance stop "$name" >/dev/null 2>&1 || continue
        echo "fcgtainer: stopped apptainer instance $name, left by a bundle that was killed" >&2
        rm -rf "$node/instance.$name" "$stale"
    done
fi
if [ "$mode" = alive ]; then
    "$apptainer" -q instance list --json "$instance" 2>/dev/null \
        | grep -q "\"instance\": *\"$instance\""
    exit
fi
if [ "$mode" = stop ]; then
    "$apptainer" -q instance stop "$instance" >/dev/null
    rc=$?
    rm -rf "$node/instance.$instance" "$node/instance.$instance.key" 2>/dev/null
    exit "$rc"
fi

# the image: mounted (FUSE usable), else unpacked once per node and reused
unpack_once() {
    local key dir
    key="$(basename "$image" .sif)-$(stat -L -c %s-%Y "$image")" \
        || fcg_die 2 "image: cannot read $image"
    dir="$node/images/$key"
    if [ ! -e "$dir.complete" ]; then
        mkdir -p "$node/images"
        exec 9>"$dir.lock"
        if command -v flock >/dev/null; then flock 9; fi
        if [ ! -e "$dir.complete" ]; then
            echo "fcgtainer: unpacking $image once on $(uname -n) into $dir" >&2
            rm -rf "$dir.tmp"
            if ! "$apptainer" -q build --sandbox "$dir.tmp" "$image" >"$dir.log" 2>&1; then
                tail -n 5 "$dir.log" >&2
                fcg_die 1 "unpacking $image into $dir failed (see $dir.log)"
            fi
            rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir.complete"
        fi
        exec 9>&-
    fi
    image=$dir
}
if [ -f "$image" ] && [ -z "$joined" ]; then  # a bundle's container has its image already
    case $(fcg_image_mode "$unpack") in unpack*) unpack_once ;; esac
fi

# CVMFS, mode host: the node's own /cvmfs or exit 87, never cvmfsexec (probed once for a
# bundle's container, when it starts)
wrap=()
[ -z "$joined" ] || hosts=() repos=() need=()
for repo in "${hosts[@]+"${hosts[@]}"}"; do
    case $(fcg_probe "$root/$repo" $((timeout * 10))) in
        ok) binds+=("$root/$repo:/cvmfs/$repo:ro") ;;
        hung) fcg_die "$FCG_EXIT_NO_CVMFS" "CVMFS: $root/$repo did not answer within \
$timeout s on $(uname -n) (hung automount?)" ;;
        *) fcg_die "$FCG_EXIT_NO_CVMFS" "CVMFS: $root/$repo is not mounted on $(uname -n) \
and the site's mode for it is host (mode cvmfsexec or auto would use cvmfsexec)" ;;
    esac
done
# mode auto: present -> bound; absent -> cvmfsexec (smoke-tested); hung or unusable -> 87
# (mode cvmfsexec repositories are in need already)
for repo in "${repos[@]+"${repos[@]}"}"; do
    case $(fcg_probe "$root/$repo" $((timeout * 10))) in
        ok) binds+=("$root/$repo:/cvmfs/$repo:ro") ;;
        hung) fcg_die "$FCG_EXIT_NO_CVMFS" "CVMFS: $root/$repo did not answer within \
$timeout s on $(uname -n) (hung automount?)" ;;
        *) need+=("$repo") ;;
    esac
done
if [ "${#need[@]}" -gt 0 ]; then
    exe=$(expand "$cvmfsexec")
    command -v "$exe" >/dev/null || fcg_die "$FCG_EXIT_NO_CVMFS" "CVMFS: ${need[*]} not \
mounted on $(uname -n) and cvmfsexec not found at '$exe' (site profile cvmfs.cvmfsexec.path)"
    if [ -n "$cache" ]; then
        export CVMFS_CACHE_BASE
        CVMFS_CACHE_BASE=$(expand "$cache")
        mkdir -p "$CVMFS_CACHE_BASE"
    fi
    fcg_cvmfsexec_smoke "$exe" "$node/cvmfsexec-smoke.$$" "$smoke" "${need[@]}" \
        || fcg_die "$FCG_EXIT_NO_CVMFS" "CVMFS: cvmfsexec could not mount ${need[*]} on \
$(uname -n) (smoke test '$exe ${need[*]} -- /bin/true' failed); it needs user namespaces \
and /dev/fuse: see fcgtainer doctor"
    wrap=("$exe" "${need[@]}" --)
    for repo in "${need[@]}"; do binds+=("/cvmfs/$repo:/cvmfs/$repo:ro"); done
fi

[ -n "$site_scratch" ] && binds+=("$site_scratch:$site_scratch:rw")
inner=()
if [ "$gpus" -gt 0 ] || [ -n "$view" ]; then
    # the check inside the container is inner.sh beside this script, bound read-only
    checkpath launcher "$here"
    binds+=("$here:$here:ro")
    inner=(/bin/sh "$here/inner.sh" "$gpus" "$view")
fi
# empty_but_binds DIR INSIDE: empty DIR, the host side of the container's INSIDE, but for
# the directories that binds are mounted on (removing one would unmount the bind)
empty_but_binds() {
    local entry path target keep
    for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
        [ -e "$entry" ] || [ -L "$entry" ] || continue
        path="$2/${entry##*/}" keep=''
        for target in "${targets[@]}"; do
            case $target in "$path") keep=mount ;; "$path"/*) keep=${keep:-parent} ;; esac
        done
        case $keep in
            mount) ;;
            parent) [ -d "$entry" ] && [ ! -L "$entry" ] && empty_but_binds "$entry" "$path" ;;
            *) rm -rf "$entry" ;;
        esac
    done
}
if [ -n "$joined" ]; then
    # each task finds the bundle container's /tmp, /var/tmp and home empty, as it would its own
    work="$node/instance.$joined"
    targets=()
    for bind in "${binds[@]+"${binds[@]}"}"; do target=${bind#*:} && targets+=("${target%%:*}"); done
    empty_but_binds "$work/tmp" /tmp
    empty_but_binds "$work/var_tmp" /var/tmp
    empty_but_binds "$work/home" "$HOME"
elif [ "$mode" = start ]; then
    [ "${#wrap[@]}" -eq 0 ] || { echo "fcgtainer: no shared container under cvmfsexec" \
        "(${need[*]} not mounted on $(uname -n)): each task starts its own" >&2; exit 3; }
    work="$node/instance.$instance"
    rm -rf "$work"
    mkdir -m 700 "$work" || fcg_die "$FCG_EXIT_CONFIG" "scratch: cannot create $work"
else
    work="$node/work.$$.$RANDOM"
    mkdir -m 700 "$work" || fcg_die "$FCG_EXIT_CONFIG" "scratch: cannot create a workdir in $node"
fi
# the environment apptainer starts with, exported by builtins in a cleared subshell (clean):
# never env(1) arguments, so no value shows in /proc/PID/cmdline; a bundle's container
# starts with none of its tasks' values: each task's exec brings its own
exports=("PATH=$PATH" "HOME=$HOME")
[ "$mode" = start ] && envs=()
for kv in "${envs[@]+"${envs[@]}"}"; do exports+=("APPTAINERENV_$kv"); done
[ -n "$site_scratch" ] && exports+=("APPTAINERENV_FCGTAINER_SCRATCH=$site_scratch")
if [ "$gpus" -gt 0 ]; then
    for v in CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES; do
        [ -n "${!v-}" ] && exports+=("APPTAINERENV_$v=${!v}")
    done
fi
[ -n "$cache" ] && [ "${#need[@]}" -gt 0 ] && exports+=("CVMFS_CACHE_BASE=$CVMFS_CACHE_BASE")
# shellcheck disable=SC2317  # called through "${cmd[@]}"
clean() {
    (
        # shellcheck disable=SC2046  # one name per word
        unset $(compgen -e) 2>/dev/null
        for kv in "${exports[@]}"; do export "${kv?}"; done
        exec "$@"
    )
}
cmd=(clean)
verb='exec'
[ "$mode" = shell ] && [ "$#" -eq 0 ] && verb=shell
if [ "$mode" = start ]; then
    cmd+=("$apptainer" -q instance start --cleanenv --containall --no-eval --workdir "$work")
else
    cmd+=("${wrap[@]+"${wrap[@]}"}" "$apptainer" "$verb" --cleanenv --containall --no-eval)
    [ -n "$joined" ] || cmd+=(--workdir "$work")
    cmd+=(--pwd "$PWD")
fi
if [ -z "$joined" ]; then
    [ "$gpus" -gt 0 ] && cmd+=(--nv)
    bindarg=$(IFS=,; printf '%s' "${binds[*]+"${binds[*]}"}")
    [ -n "$bindarg" ] && cmd+=(--bind "$bindarg")
fi
if [ "$mode" = start ]; then
    "${cmd[@]}" "$image" "$instance" >/dev/null || { rc=$?; rm -rf "$work"; exit "$rc"; }
    printf '%s\n' "$shared_key" > "$work.key"
    exit 0
fi
if [ -n "$joined" ]; then
    echo "== fcgtainer: in its bundle's container (apptainer instance $joined)"
    cmd+=("instance://$joined")
else
    cmd+=("$image")
fi
[ "$#" -gt 0 ] && cmd+=("${inner[@]+"${inner[@]}"}")
cmd+=("$@")

if [ "$mode" = shell ]; then
    "${cmd[@]}"
    rc=$?
else
    fcg_run_forwarding "${cmd[@]}"
    rc=$?
fi
[ -n "$joined" ] || rm -rf "$work" 2>/dev/null
exit "$rc"
