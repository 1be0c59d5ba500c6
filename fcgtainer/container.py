"""The argv that runs one task: natively or in Apptainer. The only module that knows
Apptainer's flags; batch tasks and ``fcgtainer shell`` use the very same argv.

An Apptainer task is ``bash -c LAUNCH fcgtainer-launch OPTIONS -- PAYLOAD``: the launcher
(a constant script, values are passed as arguments, never as shell text) decides on the
compute node what only the node knows, then runs ``env -i ... apptainer exec --cleanenv
--containall --no-eval ...`` so that only the allow-listed environment reaches the job:

- node-local scratch (``$TMPDIR``-style templates are expanded there, as data) holds the
  ``--workdir`` of ``--containall`` and, when FUSE is not usable, the image unpacked ONCE per
  node (under a lock, reused by later tasks) instead of on every exec;
- CVMFS: each repository the job needs is probed (a hung automount times out); present ->
  bound, absent -> the run goes under ``cvmfsexec REPO... --`` after a smoke test, failing
  that -> exit 87;
- GPUs: ``--nv`` and an in-container check that exits 86 when no GPU is visible.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from fcgtainer.job import TaskParams
from fcgtainer.plan import Plan, payload_argv, payload_env

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EXIT_NO_GPU = 86
EXIT_NO_CVMFS = 87
SMOKE_TIMEOUT = 120
Mode = Literal["exec", "shell"]

# Runs inside the container before the payload (any image has /bin/sh).
INNER = r"""gpus=$1 view=$2; shift 2
if [ "$gpus" -gt 0 ]; then
    if ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; }
    then
        echo "fcgtainer: $gpus GPU(s) requested but none is visible in the container" \
            "on $(uname -n)" >&2
        exit 86
    fi
fi
if [ -n "$view" ]; then
    setup=/cvmfs/sft.cern.ch/lcg/views/$view/setup.sh
    [ -r "$setup" ] || { echo "fcgtainer: LCG view $view: $setup not found" >&2; exit 87; }
    . "$setup" || exit 87
fi
exec "$@"
"""

# Runs on the compute node, outside the container.
LAUNCH = r"""set -u
die() { echo "fcgtainer: $2" >&2; exit "$1"; }
mode=exec apptainer=apptainer image= unpack=auto scratch= gpus=0 cvmfsexec=cvmfsexec
cache= timeout=5 smoke=120 root=/cvmfs home=/ inner= view=
repos=() binds=() envs=()
while [ $# -gt 0 ]; do
    case $1 in
        --) shift; break ;;
        --mode) mode=$2 ;; --apptainer) apptainer=$2 ;; --image) image=$2 ;;
        --unpack) unpack=$2 ;; --scratch) scratch=$2 ;; --gpus) gpus=$2 ;;
        --cvmfsexec) cvmfsexec=$2 ;; --cvmfs-cache) cache=$2 ;; --probe-timeout) timeout=$2 ;;
        --smoke-timeout) smoke=$2 ;; --cvmfs-root) root=$2 ;; --home) home=$2 ;;
        --inner) inner=$2 ;; --lcg-view) view=$2 ;; --repo) repos+=("$2") ;;
        --bind) binds+=("$2") ;; --env) envs+=("$2") ;;
        *) die 2 "launcher: unknown option $1" ;;
    esac
    shift 2
done
HOME=${HOME:-$home}

# expand ~ and $NAME / ${NAME} in a path template from this node's environment, as data
expand() {
    local s=$1 out="" name
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
    case $2 in /*) ;; *) die 2 "$1: '$2' is not an absolute path on $(uname -n)" ;; esac
    case $2 in *[,:]*) die 2 "$1: '$2' contains ',' or ':' (cannot be bound)" ;; esac
}

# node-local scratch: the containall workdir and the once-per-node unpacked images
site_scratch=
if [ -n "$scratch" ]; then
    scratch=$(expand "$scratch")
    [ -n "$scratch" ] || die 2 "scratch: the site's scratch expands to nothing on $(uname -n)"
    checkpath scratch "$scratch"
    site_scratch=$scratch
else
    scratch=${TMPDIR:-/tmp}
fi
node="$scratch/fcgtainer-$UID"
[ -d "$node" ] || mkdir -p "$node" || die 2 "scratch: cannot create $node"

# the image: mounted (FUSE usable), else unpacked once per node and reused
fuse_ok() {
    [ -c /dev/fuse ] && [ -r /dev/fuse ] && [ -w /dev/fuse ] || return 1
    command -v squashfuse_ll >/dev/null || command -v squashfuse >/dev/null
}
unpack_once() {
    local key dir lock
    key="$(basename "$image" .sif)-$(stat -L -c %s-%Y "$image")" \
        || die 2 "image: cannot read $image"
    dir="$node/images/$key"
    if [ ! -e "$dir.complete" ]; then
        mkdir -p "$node/images"
        lock="$dir.lock"
        exec 9>"$lock"
        if command -v flock >/dev/null; then flock 9; fi
        if [ ! -e "$dir.complete" ]; then
            echo "fcgtainer: unpacking $image once on $(uname -n) into $dir" >&2
            rm -rf "$dir.tmp"
            if ! "$apptainer" -q build --sandbox "$dir.tmp" "$image" >"$dir.log" 2>&1; then
                tail -n 5 "$dir.log" >&2
                die 1 "unpacking $image into $dir failed (see $dir.log)"
            fi
            rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir.complete"
        fi
        exec 9>&-
    fi
    image=$dir
}
if [ -f "$image" ]; then
    case $unpack in
        always) unpack_once ;;
        auto) fuse_ok || unpack_once ;;
    esac
fi

# CVMFS: present -> bound; absent -> cvmfsexec (smoke-tested); hung or unusable -> 87
probe() {
    ( ls "$1/" >/dev/null 2>&1 ) &
    local pid=$! waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$waited" -ge $(( timeout * 10 )) ]; then
            kill -9 "$pid" 2>/dev/null
            echo hung
            return
        fi
        sleep 0.1
        waited=$(( waited + 1 ))
    done
    if wait "$pid"; then echo ok; else echo missing; fi
}
wrap=() need=()
for repo in "${repos[@]+"${repos[@]}"}"; do
    case $(probe "$root/$repo") in
        ok) binds+=("$root/$repo:/cvmfs/$repo:ro") ;;
        hung) die 87 "CVMFS: $root/$repo did not answer within $timeout s on $(uname -n) \
(hung automount?)" ;;
        *) need+=("$repo") ;;
    esac
done
if [ "${#need[@]}" -gt 0 ]; then
    exe=$(expand "$cvmfsexec")
    command -v "$exe" >/dev/null || die 87 "CVMFS: ${need[*]} not mounted on $(uname -n) \
and cvmfsexec not found at '$exe' (site profile cvmfs.cvmfsexec.path)"
    if [ -n "$cache" ]; then
        export CVMFS_CACHE_BASE
        CVMFS_CACHE_BASE=$(expand "$cache")
        mkdir -p "$CVMFS_CACHE_BASE"
    fi
    if ! timeout -k 5 "$smoke" "$exe" "${need[@]}" -- /bin/true >"$node/cvmfsexec-smoke.$$" 2>&1
    then
        tail -n 5 "$node/cvmfsexec-smoke.$$" >&2
        rm -f "$node/cvmfsexec-smoke.$$"
        die 87 "CVMFS: cvmfsexec could not mount ${need[*]} on $(uname -n) (smoke test \
'$exe ${need[*]} -- /bin/true' failed); it needs user namespaces and /dev/fuse: \
see fcgtainer doctor"
    fi
    rm -f "$node/cvmfsexec-smoke.$$"
    wrap=("$exe" "${need[@]}" --)
    for repo in "${need[@]}"; do binds+=("/cvmfs/$repo:/cvmfs/$repo:ro"); done
fi

[ -n "$site_scratch" ] && binds+=("$site_scratch:$site_scratch:rw")
work="$node/work.$$.$RANDOM"
mkdir -m 700 "$work" || die 2 "scratch: cannot create a workdir in $node"
cmd=(env -i "PATH=$PATH" "HOME=$HOME")
for kv in "${envs[@]+"${envs[@]}"}"; do cmd+=("APPTAINERENV_$kv"); done
[ -n "$site_scratch" ] && cmd+=("APPTAINERENV_FCGTAINER_SCRATCH=$site_scratch")
if [ "$gpus" -gt 0 ]; then
    for v in CUDA_VISIBLE_DEVICES NVIDIA_VISIBLE_DEVICES; do
        [ -n "${!v-}" ] && cmd+=("APPTAINERENV_$v=${!v}")
    done
fi
[ -n "$cache" ] && [ "${#need[@]}" -gt 0 ] && cmd+=("CVMFS_CACHE_BASE=$CVMFS_CACHE_BASE")
verb=exec
[ "$mode" = shell ] && [ "$#" -eq 0 ] && verb=shell
cmd+=("${wrap[@]+"${wrap[@]}"}" "$apptainer" "$verb" --cleanenv --containall --no-eval)
cmd+=(--workdir "$work" --pwd "$PWD")
[ "$gpus" -gt 0 ] && cmd+=(--nv)
bindarg=$(IFS=,; printf '%s' "${binds[*]+"${binds[*]}"}")
[ -n "$bindarg" ] && cmd+=(--bind "$bindarg")
cmd+=("$image")
[ -n "$inner" ] && [ "$#" -gt 0 ] && cmd+=(/bin/sh -c "$inner" fcgtainer-task "$gpus" "$view")
cmd+=("$@")

cleanup() { rm -rf "$work" 2>/dev/null; }
if [ "$mode" = shell ]; then
    "${cmd[@]}"
    rc=$?
    cleanup
    exit "$rc"
fi
child=
forward() { [ -n "$child" ] && kill -s "$1" "$child" 2>/dev/null; }
trap 'forward USR2' USR2
trap 'forward TERM' TERM
trap 'forward INT' INT
"${cmd[@]}" &
child=$!
while :; do
    wait "$child"
    rc=$?
    kill -0 "$child" 2>/dev/null || break
done
cleanup
exit "$rc"
"""


def binds(plan: Plan) -> list[tuple[str, str, bool]]:
    """``(source, target, readonly)`` of every bind a task needs, in a stable order.

    Node-local scratch and CVMFS are bound by the launcher, which resolves them on the node.
    """
    out: list[tuple[str, str, bool]] = [
        (plan.job.job_dir, plan.job.job_dir, True),
        (str(plan.run_dir), str(plan.run_dir), False),
    ]
    out += [(path, path, True) for _, path in sorted(plan.inputs.items())]
    extra = [*plan.site.apptainer.binds, *plan.job.binds]
    for bind in extra:
        source = bind.source.replace("{job_dir}", plan.job.job_dir)
        out.append((source, bind.target or source, bind.readonly))
    seen: set[str] = set()
    unique = []
    for source, target, readonly in out:
        if target not in seen:
            seen.add(target)
            unique.append((source, target, readonly))
    return unique


def bind_arg(items: list[tuple[str, str, bool]]) -> str:
    """Binds as one ``--bind`` value (paths were checked for ``,`` and ``:`` on load)."""
    return ",".join(bind_spec(s, t, ro) for s, t, ro in items)


def bind_spec(source: str, target: str, readonly: bool) -> str:
    """One ``source:target:ro|rw`` item."""
    return f"{source}:{target}:{'ro' if readonly else 'rw'}"


def cvmfs_repos(plan: Plan) -> list[str]:
    """The CVMFS repositories the task needs, except those the site marks ``none``."""
    wanted = list(plan.job.cvmfs)
    if plan.job.lcg_view and "sft.cern.ch" not in wanted:
        wanted.append("sft.cern.ch")
    modes = plan.site.cvmfs.repositories
    return [repo for repo in wanted if modes.get(repo, "host") != "none"]


def launch_options(plan: Plan, env: Mapping[str, str], home: str, mode: Mode) -> list[str]:
    """The launcher's options for this plan: image, scratch, GPUs, CVMFS, binds, env."""
    assert plan.image is not None, "an apptainer plan always has an image"
    site = plan.site
    opts = ["--mode", mode, "--apptainer", site.apptainer.binary, "--image", plan.image]
    opts += ["--unpack", site.apptainer.unpack, "--home", home]
    if site.scratch:
        opts += ["--scratch", site.scratch]
    gpus = plan.resources.gpus
    if gpus > 0:
        opts += ["--gpus", str(gpus)]
    repos = cvmfs_repos(plan)
    if repos:
        opts += ["--probe-timeout", str(max(1, round(site.cvmfs.probe_timeout)))]
        opts += ["--cvmfsexec", site.cvmfs.cvmfsexec.path]
        opts += ["--smoke-timeout", str(SMOKE_TIMEOUT)]
        if site.cvmfs.cvmfsexec.cache:
            opts += ["--cvmfs-cache", site.cvmfs.cvmfsexec.cache]
    for repo in repos:
        opts += ["--repo", repo]
    if gpus > 0 or plan.job.lcg_view:
        opts += ["--inner", INNER, "--lcg-view", plan.job.lcg_view or ""]
    for source, target, readonly in binds(plan):
        opts += ["--bind", bind_spec(source, target, readonly)]
    for key, value in env.items():
        opts += ["--env", f"{key}={value}"]
    return opts


def launcher_argv(
    plan: Plan, env: Mapping[str, str], home: str, command: Sequence[str], mode: Mode = "exec"
) -> list[str]:
    """``bash -c LAUNCH`` with the plan's options, then the command to run in the image."""
    options = launch_options(plan, env, home, mode)
    return ["/bin/bash", "-c", LAUNCH, "fcgtainer-launch", *options, "--", *command]


def task_argv(plan: Plan, task: TaskParams, host_env: Mapping[str, str] | None = None) -> list[str]:
    """The full argv of one task; only the allow-listed environment reaches the payload."""
    host = os.environ if host_env is None else host_env
    env = payload_env(plan, task, host)
    home = host.get("HOME", str(Path.home()))
    if plan.runtime == "native":
        path = os.pathsep.join([str(Path(sys.executable).parent), BASE_PATH])
        outer = {"PATH": path, "HOME": home, **env}
        return ["env", "-i", *(f"{k}={v}" for k, v in outer.items()), *payload_argv(plan, task)]
    return launcher_argv(plan, env, home, payload_argv(plan, task))


def shell_argv(
    plan: Plan,
    task: TaskParams,
    command: Sequence[str] = (),
    host_env: Mapping[str, str] | None = None,
) -> list[str]:
    """The argv of ``fcgtainer shell``: a task's argv with a shell (or ``command``) inside."""
    host = os.environ if host_env is None else host_env
    env = payload_env(plan, task, host)
    home = host.get("HOME", str(Path.home()))
    if plan.runtime == "native":
        path = os.pathsep.join([str(Path(sys.executable).parent), BASE_PATH])
        outer = {"PATH": path, "HOME": home, **env}
        shell = list(command) or [host.get("SHELL", "/bin/bash")]
        return ["env", "-i", *(f"{k}={v}" for k, v in outer.items()), *shell]
    return launcher_argv(plan, env, home, list(command), mode="shell")
