#!/bin/bash
# A SLURM campaign's last job: writes RUN_DIR/report/index.html once every task has ended
# (sbatch --dependency=afterany on all the run's arrays), as DAGMan's FINAL node does on
# HTCondor. It runs the submitter's fcgtainer, which must be reachable from the node (a
# venv on the shared home, as on most clusters); where it is not, it says how to write the
# report on the submit host instead.
#   report.sh RUN_DIR PYTHON
set -u
run_dir=$1
python=$2
if [ -x "$python" ] && "$python" -c 'import fcgtainer' 2>/dev/null; then
    exec "$python" -m fcgtainer.runs.report "$run_dir"
fi
echo "fcgtainer: no fcgtainer at $python on $(hostname): write the report on the submit host" \
    "with \`fcgtainer report RUN\` (RUN: the run directory's id)"
exit 0
