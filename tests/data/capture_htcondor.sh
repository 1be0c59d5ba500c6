#!/bin/bash
# Captures a real HTCondor job event log into ~/cap/events.log (run in the testbed as the user):
#   tests/testbed/testbed exec --user -- bash tests/data/capture_htcondor.sh
# then copy ~/cap/events.log to tests/data/htcondor/events.log.
# Jobs: 0 succeeds, 1 exits 3, 2 is held then removed, 3 is removed while running,
# 4 is vacated (evicted) once and then succeeds.
set -x
mkdir -p ~/cap && cd ~/cap && rm -f events.log
cat > job.sh <<'SH'
#!/bin/bash
case $1 in
  1) exit 3 ;;
  3|4) sleep 20 ;;
esac
exit 0
SH
chmod +x job.sh
cat > job.sub <<'SUB'
executable = job.sh
arguments = $(ProcId)
log = events.log
output = /dev/null
error = /dev/null
request_memory = 64MB
should_transfer_files = NO
queue 5
SUB
c=$(condor_submit -terse job.sub | cut -d. -f1)
condor_hold "$c.2"
sleep 15
condor_q -af ClusterId ProcId JobStatus HoldReason
condor_rm "$c.3"
condor_vacate_job "$c.4"
condor_rm "$c.2"
sleep 40
condor_q -af ClusterId ProcId JobStatus
condor_history "$c" -af ClusterId ProcId JobStatus ExitCode
