JOB_make=$(sbatch --parsable --array=0-3 --chdir=/runs/hello-campaign-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --cpus-per-task=1 --export=NIL --job-name=fcg-hello-campaign-make-00000000-1111-2222-3333-444444444444 --mem=2048M --open-mode=append --output=/runs/hello-campaign-00000000/steps/make/%a.out --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-campaign-00000000/wrapper.sh /runs/hello-campaign-00000000 "$SLURM_ARRAY_TASK_ID"
FCGTAINER_EOF
)
JOB_make_1=$(sbatch --parsable --array=0-1 --chdir=/runs/hello-campaign-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --cpus-per-task=1 --export=NIL --job-name=fcg-hello-campaign-make-00000000-1111-2222-3333-444444444444+4 --mem=2048M --open-mode=append --output=/runs/hello-campaign-00000000/steps/make/4+%a.out --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-campaign-00000000/wrapper.sh /runs/hello-campaign-00000000 "$((SLURM_ARRAY_TASK_ID + 4))"
FCGTAINER_EOF
)
JOB_check=$(sbatch --parsable --array=0-3 --chdir=/runs/hello-campaign-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --cpus-per-task=1 "--dependency=aftercorr:${JOB_make%%;*}" --export=NIL --job-name=fcg-hello-campaign-check-00000000-1111-2222-3333-444444444444 --kill-on-invalid-dep=yes --mem=2048M --open-mode=append --output=/runs/hello-campaign-00000000/steps/check/%a.out --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-campaign-00000000/wrapper.sh /runs/hello-campaign-00000000 "$((SLURM_ARRAY_TASK_ID + 6))"
FCGTAINER_EOF
)
JOB_check_1=$(sbatch --parsable --array=0-1 --chdir=/runs/hello-campaign-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --cpus-per-task=1 "--dependency=aftercorr:${JOB_make_1%%;*}" --export=NIL --job-name=fcg-hello-campaign-check-00000000-1111-2222-3333-444444444444+4 --kill-on-invalid-dep=yes --mem=2048M --open-mode=append --output=/runs/hello-campaign-00000000/steps/check/4+%a.out --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-campaign-00000000/wrapper.sh /runs/hello-campaign-00000000 "$((SLURM_ARRAY_TASK_ID + 10))"
FCGTAINER_EOF
)
JOB_sum=$(sbatch --parsable --array=0 --chdir=/runs/hello-campaign-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --cpus-per-task=1 "--dependency=afterany:${JOB_check%%;*},afterany:${JOB_check_1%%;*}" --export=NIL --job-name=fcg-hello-campaign-sum-00000000-1111-2222-3333-444444444444 --kill-on-invalid-dep=yes --mem=2048M --open-mode=append --output=/runs/hello-campaign-00000000/steps/sum/%a.out --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-campaign-00000000/wrapper.sh /runs/hello-campaign-00000000 "$((SLURM_ARRAY_TASK_ID + 12))"
FCGTAINER_EOF
)
sbatch --parsable --chdir=/runs/hello-campaign-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444: report' --cpus-per-task=1 "--dependency=afterany:${JOB_make%%;*}:${JOB_make_1%%;*}:${JOB_check%%;*}:${JOB_check_1%%;*}:${JOB_sum%%;*}" --export=NIL --job-name=fcg-hello-campaign-00000000-1111-2222-3333-444444444444.report --mem=2048M --output=/runs/hello-campaign-00000000/scheduler/report.out --time=00:30:00 <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: the campaign's report, after every task
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-campaign-00000000/node/report.sh /runs/hello-campaign-00000000 /usr/bin/python3
FCGTAINER_EOF
