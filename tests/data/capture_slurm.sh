#!/bin/bash
# Captures the real SLURM output under tests/data/slurm (run in the testbed as the user):
#   tests/testbed/testbed exec --user -- bash tests/data/capture_slurm.sh
# then copy ~/cap/*.txt into tests/data/slurm/.
set -x
mkdir -p "$HOME/cap"; cd "$HOME/cap" || exit 1
j=$(sbatch --parsable --array=0-5%2 --mem=64M --job-name=capture --output=/dev/null --wrap='sleep 20')
j2=$(sbatch --parsable --array=0-2 --hold --mem=64M --job-name=capture2 --output=/dev/null --wrap='sleep 1')
sleep 3
squeue --noheader --array --states=all --jobs="$j,$j2" --format='%i|%T|%r' > "$HOME"/cap/squeue_array.txt
squeue --noheader --states=all --jobs="$j,$j2" --format='%i|%T|%r' > "$HOME"/cap/squeue_collapsed.txt
scancel "$j" "$j2"
# shellcheck disable=SC2016  # the job's own variables, expanded on the node
f=$(sbatch --parsable --array=0-3 --mem=64M --job-name=capture3 --output=/dev/null --wrap='if [ $SLURM_ARRAY_TASK_ID = 1 ]; then exit 3; fi; if [ $SLURM_ARRAY_TASK_ID = 2 ]; then kill -9 $$; fi; if [ $SLURM_ARRAY_TASK_ID = 3 ]; then sleep 300; fi; exit 0')
t=$(sbatch --parsable --time=1 --mem=64M --job-name=capture4 --output=/dev/null --wrap='sleep 300')
sleep 8
scancel "${f}_3"
sleep 3
sacct --noheader --parsable2 --allocations --jobs="$f,$j,$j2" --format=JobID,State,ExitCode,Reason > "$HOME"/cap/sacct_finished.txt
squeue --noheader --array --states=all --jobs="$f" --format='%i|%T|%r' > "$HOME"/cap/squeue_finished.txt
squeue --noheader --array --states=all --jobs=999999 --format='%i|%T|%r' ; echo "rc=$?"
squeue --noheader --array --states=all --jobs=999999 --format='%i|%T|%r' 2> "$HOME"/cap/squeue_invalid.txt
echo "$t" > "$HOME"/cap/timeout_job
# then, a minute later (the TIMEOUT line):
#   sacct --noheader --parsable2 --allocations --jobs=$t --format=JobID,State,ExitCode,Reason
# sacct_disabled.txt: stderr of the same sacct with SLURM_CONF pointing at a copy of
# slurm.conf without the AccountingStorage* lines.
# the size limits (MaxArraySize, MaxJobCount, AccountingStorageType):
scontrol show config > "$HOME"/cap/scontrol_config.txt
