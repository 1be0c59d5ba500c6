sbatch --parsable '--account=a'"'"'; echo foo' --array=0-2 '--chdir=/golden/runs a 0 '"'"'q'"'"' "d" $(touch x)/h-a.0_x-00000000' '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' '--constraint=$(touch x)' --cpus-per-task=1 --export=NIL --job-name=fcg-h-a.0_x-00000000-1111-2222-3333-444444444444 --mem=2048M --open-mode=append '--output=/golden/runs a 0 '"'"'q'"'"' "d" $(touch x)/h-a.0_x-00000000/scheduler/%a.out' '--partition=a 0' '--qos=a"=0"' --time=01:00:00 --requeue <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /bin/bash '/golden/runs a 0 '"'"'q'"'"' "d" $(touch x)/h-a.0_x-00000000'/wrapper.sh '/golden/runs a 0 '"'"'q'"'"' "d" $(touch x)/h-a.0_x-00000000' "$SLURM_ARRAY_TASK_ID"
FCGTAINER_EOF
