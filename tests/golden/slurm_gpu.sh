sbatch --parsable --account=INF25_lhcb --array=0-299%64 --chdir=/work/u/runs/hello-00000000 '--comment=fcgtainer run 00000000-1111-2222-3333-444444444444' --constraint=a100 --cpus-per-task=4 --export=NIL --gres=gpu:1 --job-name=fcg-hello-00000000-1111-2222-3333-444444444444 --mem=7168M --open-mode=append --output=/work/u/runs/hello-00000000/scheduler/%a.out --partition=boost_usr_prod --qos=normal --signal=B:USR2@600 --time=1-00:00:00 --requeue --nice=10 <<'FCGTAINER_EOF'
#!/bin/bash
# fcgtainer run 00000000-1111-2222-3333-444444444444: one array task per fcgtainer task
# --export=NIL: nothing of the submitter's environment but SLURM_*
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
if [ -f /etc/profile ]; then . /etc/profile; fi
module load apptainer/1.3
exec /bin/bash /work/u/runs/hello-00000000/wrapper.sh /work/u/runs/hello-00000000 "$SLURM_ARRAY_TASK_ID"
FCGTAINER_EOF
