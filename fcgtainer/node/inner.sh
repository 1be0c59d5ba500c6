#!/bin/sh
# fcgtainer's check inside the container, before the payload (any image has /bin/sh):
#   inner.sh GPUS LCG_VIEW CMD...
# exit 86 when GPUS > 0 and none is visible; set up the LCG view (exit 87 when it is not
# there); then exec CMD.
here=$(dirname "$0")
. "$here/codes.sh"
. "$here/lib.sh"
gpus=$1 view=$2
shift 2
fcg_check_gpus "$gpus"
fcg_lcg_view "$view"
exec "$@"
