#!/bin/sh
# The node-side checks for `fcgtainer doctor`, one answer on stdout:
#   probe.sh cvmfs PATH TENTHS    ok | missing | hung
#   probe.sh image-mode UNPACK    mount | unpack REASON
#   probe.sh fuse                 ok | absent | closed
#   probe.sh squashfuse           its path, or nothing
#   probe.sh gpus                 the visible GPUs, one a line
here=$(dirname "$0")
. "$here/codes.sh"
. "$here/lib.sh"
what=$1
shift
case $what in
    cvmfs) fcg_probe "$1" "$2" ;;
    image-mode) fcg_image_mode "$1" ;;
    fuse) fcg_fuse ;;
    squashfuse) fcg_squashfuse || true ;;
    gpus) fcg_gpus ;;
    *) fcg_die "$FCG_EXIT_CONFIG" "probe.sh: unknown check $what" ;;
esac
