#!/bin/bash
# The runscript of every fcgtainer image (`apptainer run IMAGE [CMD...]`), installed with
# its library as /opt/fcgtainer/node/run.sh:
# 1. CVMFS: for each repository in FCGTAINER_CVMFS_REPOS (space-separated; sft.cern.ch is
#    added when an LCG view is asked for) use /cvmfs/<repo> when it is there (the host's,
#    bound in); otherwise start the image's cvmfsexec for the missing ones, after a smoke
#    test, with its cache on node-local scratch; otherwise stop with exit code 87.
#    A probe that does not answer within FCGTAINER_CVMFS_TIMEOUT seconds (a hung automount)
#    is an error, never a hang.
# 2. GPUs: when FCGTAINER_GPUS > 0 and no GPU is visible, stop with exit code 86.
# 3. The LCG view FCGTAINER_LCG_VIEW (e.g. LCG_105a_cuda/x86_64-el9-gcc11-opt) is set up.
# 4. The command runs (default: an interactive shell).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=codes.sh
. "$here/codes.sh"
# shellcheck source=lib.sh
. "$here/lib.sh"
repos=${FCGTAINER_CVMFS_REPOS:-}
view=${FCGTAINER_LCG_VIEW:-}
timeout=${FCGTAINER_CVMFS_TIMEOUT:-5}
cvmfsexec=${FCGTAINER_CVMFSEXEC:-/opt/cvmfsexec/cvmfsexec}
scratch=${FCGTAINER_SCRATCH:-${TMPDIR:-/tmp}}

if [ -n "$view" ]; then
    case " $repos " in *" sft.cern.ch "*) ;; *) repos="$repos sft.cern.ch" ;; esac
fi
missing=()
for repo in $repos; do
    case $(fcg_probe "/cvmfs/$repo" $((timeout * 10))) in
        ok) ;;
        hung) fcg_die "$FCG_EXIT_NO_CVMFS" \
            "/cvmfs/$repo did not answer within ${timeout} s (hung automount?)" ;;
        *) missing+=("$repo") ;;
    esac
done
if [ "${#missing[@]}" -gt 0 ]; then
    [ -z "${FCGTAINER_IN_CVMFSEXEC:-}" ] || fcg_die "$FCG_EXIT_NO_CVMFS" \
        "cvmfsexec started but /cvmfs/${missing[0]} is still missing"
    [ -x "$cvmfsexec" ] || fcg_die "$FCG_EXIT_NO_CVMFS" "CVMFS repositories ${missing[*]} \
are not mounted and cvmfsexec is not at $cvmfsexec; run on a node with CVMFS or bind it \
(--bind /cvmfs)"
    # cvmfsexec writes its cache and logs into its dist: use a copy on node-local scratch.
    if [ ! -w "$(dirname "$cvmfsexec")" ]; then
        copy="$scratch/fcgtainer-cvmfsexec-$(id -u)"
        if [ ! -x "$copy/cvmfsexec" ]; then
            if mkdir -p "$copy.tmp.$$" && cp -a "$(dirname "$cvmfsexec")/." "$copy.tmp.$$/"; then
                mv "$copy.tmp.$$" "$copy" 2>/dev/null || rm -rf "$copy.tmp.$$"
            else
                rm -rf "$copy.tmp.$$"
            fi
        fi
        cvmfsexec="$copy/cvmfsexec"
    fi
    fcg_cvmfsexec_smoke "$cvmfsexec" "$scratch/cvmfsexec-smoke.$$" 120 "${missing[@]}" \
        || fcg_die "$FCG_EXIT_NO_CVMFS" "cvmfsexec could not mount ${missing[*]} (smoke test \
failed); it needs unprivileged user namespaces and /dev/fuse (see fcgtainer doctor)"
    export FCGTAINER_IN_CVMFSEXEC=1
    exec "$cvmfsexec" "${missing[@]}" -- "$0" "$@"
fi

fcg_check_gpus "${FCGTAINER_GPUS:-0}"
fcg_lcg_view "$view"

[ "$#" -gt 0 ] || set -- /bin/bash
exec "$@"
