# shellcheck shell=sh
# Exit codes of the task contract (docs/payload-contract.md), for the node-side scripts.
# fcgtainer/states.py holds the same numbers for Python; tests/unit/test_node.py checks
# that the two agree.
# shellcheck disable=SC2034  # used by the scripts that source this file
FCG_EXIT_CONFIG=2
# shellcheck disable=SC2034
FCG_EXIT_REQUEUE=85
# shellcheck disable=SC2034
FCG_EXIT_NO_GPU=86
# shellcheck disable=SC2034
FCG_EXIT_NO_CVMFS=87
# shellcheck disable=SC2034
FCG_EXIT_UPSTREAM=88
# shellcheck disable=SC2034
FCG_EXIT_UPSTREAM_WAIT=89
