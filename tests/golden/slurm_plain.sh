sbatch --parsable --array=0-3 --chdir=/runs/hello-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --cpus-per-task=1 --export=NIL --job-name=fcg-hello-00000000-1111-2222-3333-444444444444 --mem=2048M --open-mode=append --output=/runs/hello-00000000/scheduler/%a.out --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash /runs/hello-00000000/wrapper.sh /runs/hello-00000000 "$SLURM_ARRAY_TASK_ID"
FCGTAINER_EOF
