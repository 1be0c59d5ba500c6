"""Bundles (``bundle: N``): N short tasks in one SLURM array task, each with its own marker,
log and retries; a failed one is rerun alone."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fcgtainer import node, proc, tasktable
from fcgtainer.backends.slurm import SlurmBackend, describe_sbatch, render_sbatch
from fcgtainer.backends.slurm_limits import plan_arrays
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.errors import ConfigError
from fcgtainer.plan import container
from fcgtainer.plan.tasks import Plan, make_plan
from fcgtainer.runs.journal import RunRecord, TaskRecord
from fcgtainer.runs.monitor import _merge_run
from fcgtainer.runs.rundir import bundle_queues
from fcgtainer.states import State, TaskStatus

pytestmark = pytest.mark.unit
RUN = "11111111-2222-3333-4444-555555555555"


def _site(runs: Path, **extra: Any) -> Site:
    return Site.model_validate({"scheduler": "slurm", "runs_dir": str(runs), **extra})


def _plan(runs: Path, tasks: int, bundle: int | None = 25, **extra: Any) -> Plan:
    job: dict[str, Any] = {
        "name": "short",
        "command": ["true"],
        "matrix": {"n": {"range": [0, tasks]}},
        "resources": {"walltime": 60},
        **extra,
    }
    if bundle is not None:
        job["bundle"] = bundle
    return make_plan(Job.model_validate(job), _site(runs), {}, RUN, runtime="native")


def _option(argv: Sequence[str], name: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), None)


class Fake:
    """sbatch prints 1000, 1001...; scontrol allows arrays of 101; the rest answers nothing."""

    def __init__(self, max_job_count: int = 10_000) -> None:
        self.calls: list[tuple[list[str], str | None]] = []
        self.next_job = 1000
        self.config = f"MaxArraySize = 101\nMaxJobCount = {max_job_count}\n"

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        self.calls.append((list(argv), kwargs.get("stdin")))
        if argv[0] == "sbatch":
            self.next_job += 1
            return proc.Completed(tuple(argv), 0, f"{self.next_job - 1}\n", "")
        if argv[0] == "scontrol":
            return proc.Completed(tuple(argv), 0, self.config, "")
        return proc.Completed(tuple(argv), 0, "", "")


def test_300_tasks_by_25_are_12_array_tasks_each_task_once(tmp_path: Path) -> None:
    plan = _plan(tmp_path, 300)
    arrays = plan_arrays(plan, range(300), size=101)
    leaders = [i for a in arrays for i in a.members]
    assert leaders == list(range(0, 300, 25))
    every = [t for a in arrays for i in a.members for t in a.tasks_of(i)]
    assert every == list(range(300))
    assert all(0 <= a.array_index(i) < 101 for a in arrays for i in a.members)

    fake = Fake()
    plan.run_dir.mkdir(parents=True)
    ids = SlurmBackend(plan.site, runner=fake).submit(plan)
    sbatches = [argv for argv, _ in fake.calls if argv[0] == "sbatch"]
    assert [_option(a, "array") for a in sbatches] == ["0,25,50,75,100", "24,49,74,99", "23,48,73"]
    assert _option(sbatches[0], "time") == "00:25:00"  # 25 tasks of 1 min in turn
    assert sorted(ids) == list(range(300))
    assert ids[0] == ids[24] == "1000_0" and ids[25] == "1000_25" and ids[299] == "1002_73"
    assert tasktable.read_bundles(plan.run_dir)[275] == tuple(range(275, 300))
    stdin = next(s for argv, s in fake.calls if argv[0] == "sbatch")
    assert stdin == render_sbatch(plan, 0) and "node/bundle.sh" in (stdin or "")
    # reconcile after a lost answer: the array index of a bundle gives all of its tasks
    lines = "1000_25|RUNNING|None|" + plan.name + "\n"

    def squeue(argv: Sequence[str], **kwargs: Any) -> proc.Completed:
        if argv[0] == "squeue":
            return proc.Completed(tuple(argv), 0, lines, "")
        return Fake()(argv, **kwargs)

    found = SlurmBackend(plan.site, runner=squeue).find(plan)
    assert found == dict.fromkeys(range(25, 50), "1000_25")


def test_the_room_counts_jobs_a_bundle_is_one(tmp_path: Path) -> None:
    """MaxJobCount 6, nothing queued: room for 5 jobs, so 5 bundles of 25 go, 175 wait."""
    plan = _plan(tmp_path, 300)
    plan.run_dir.mkdir(parents=True)
    backend = SlurmBackend(plan.site, runner=Fake(max_job_count=6))
    ids = backend.submit(plan)
    assert sorted(ids) == list(range(125)) and "125 of 300" in backend.note


def test_the_dry_run_writes_the_bundles_before_each_sbatch(tmp_path: Path) -> None:
    text = describe_sbatch(_plan(tmp_path, 60, bundle=30))
    head, sbatch = text.split("sbatch", 1)
    assert "bundles.txt <<'FCGTAINER_EOF'\n" in head
    assert " ".join(map(str, range(30))) + "\n" in head and "node/bundle.sh" in sbatch


def test_bundle_from_the_site_and_its_limits(tmp_path: Path) -> None:
    job = Job.model_validate({"name": "s", "command": ["true"], "matrix": {"n": [1, 2]}})
    assert make_plan(job, _site(tmp_path, bundle=4), {}, RUN, runtime="native").bundle == 4
    with pytest.raises(ConfigError, match="cannot be requeued alone"):
        _plan(tmp_path, 10, bundle=5, checkpoint={"enabled": True})
    condor = Site.model_validate({"scheduler": "htcondor", "runs_dir": str(tmp_path)})
    bundled = job.model_copy(update={"bundle": 2})
    assert make_plan(bundled, condor, {}, RUN, runtime="native").bundle == 2
    campaign = Job.model_validate(
        {"name": "c", "command": ["true"], "steps": {"a": {"bundle": 2}, "b": {}}}
    )
    steps = make_plan(campaign, condor, {}, RUN, runtime="native").step_plans()
    assert [step.plan.bundle for step in steps] == [2, 1]


def test_a_bundle_must_fit_in_the_runtime_an_htcondor_pool_grants(tmp_path: Path) -> None:
    """espresso grants 1200 s: 25 tasks of 60 s do not fit in one job, 20 do."""
    site = Site.model_validate(
        {
            "scheduler": "htcondor",
            "runs_dir": str(tmp_path),
            "htcondor": {"job_flavour": "espresso"},
        }
    )
    job = {"name": "s", "command": ["true"], "matrix": {"n": {"range": [0, 100]}}}
    job["resources"] = {"walltime": 60}
    with pytest.raises(ConfigError) as error:
        make_plan(Job.model_validate({**job, "bundle": 25}), site, {}, RUN, runtime="native")
    assert "need 1500 s in one job" in str(error.value) and "grants a job 1200 s" in str(
        error.value
    )
    assert "at most 48 s" in str(error.value.hint) and "bundle: 20" in str(error.value.hint)
    plan = make_plan(Job.model_validate({**job, "bundle": 20}), site, {}, RUN, runtime="native")
    assert plan.bundle == 20


def _bundle_run(run_dir: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "7",
        "SLURM_ARRAY_JOB_ID": "7",
        "SLURM_ARRAY_TASK_ID": "0",
        "SLURM_RESTART_COUNT": "0",
    }
    argv = ["bash", str(run_dir / "node" / "bundle.sh"), str(run_dir), "0"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_each_task_of_a_bundle_has_its_marker_log_and_retries(tmp_path: Path) -> None:
    """Tasks 0..2 in one bundle; 1 fails (retries: 1, so twice), never a SLURM requeue.
    Run again (the bundle requeued, or resubmitted): only the task not done runs."""
    run_dir = tmp_path / "run"
    node.install(run_dir)
    for i in range(3):
        tdir = run_dir / "tasks" / str(i)
        tdir.mkdir(parents=True)
        code = 3 if i == 1 else 0
        script = f'echo "attempt $FCGTAINER_ATTEMPT"; exit {code}'
        (tdir / "argv").write_bytes(f"env\0FCGTAINER_ATTEMPT=1\0sh\0-c\0{script}\0".encode())
        (tdir / "retries").write_text("1\n")
    (run_dir / "bundles.txt").write_text("0 1 2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "scontrol.log"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (bin_dir / "scontrol").chmod(0o755)

    done = _bundle_run(run_dir, bin_dir)
    assert done.returncode == 0, done.stderr
    markers = [(run_dir / "tasks" / str(i) / "exit_code").read_text().strip() for i in range(3)]
    assert markers == ["0", "3", "0"]
    attempts = [len((run_dir / "tasks" / str(i) / "attempts").read_text().splitlines())
                for i in range(3)]  # fmt: skip
    assert attempts == [1, 2, 1]
    failed_log = (run_dir / "tasks" / "1" / "task.log").read_text()
    assert "task 1 attempt 1" in failed_log and "task 1 attempt 2" in failed_log
    assert "attempt 2\n" in failed_log  # the payload saw its attempt number
    assert "task 0 attempt" not in failed_log  # each task its own log
    assert not log.exists(), "a bundled task must not requeue the whole bundle"

    (run_dir / "tasks" / "1" / "argv").write_bytes(b"true\0")  # the cause is fixed
    assert _bundle_run(run_dir, bin_dir).returncode == 0
    attempts = [len((run_dir / "tasks" / str(i) / "attempts").read_text().splitlines())
                for i in range(3)]  # fmt: skip
    assert attempts == [1, 3, 1]
    assert (run_dir / "tasks" / "1" / "exit_code").read_text().strip() == "0"


def test_status_shows_a_bundles_later_tasks_as_pending_not_running(tmp_path: Path) -> None:
    """SLURM says the bundle's job runs; of its tasks, only the one it runs now is running."""
    run_dir = tmp_path / "run"
    node.install(run_dir)
    gate = tmp_path / "go"
    for i in range(3):
        tdir = run_dir / "tasks" / str(i)
        tdir.mkdir(parents=True)
        wait = f"while [ ! -e {gate} ]; do sleep 0.05; done" if i == 1 else "true"
        (tdir / "argv").write_bytes(f"sh\0-c\0{wait}\0".encode())
    (run_dir / "bundles.txt").write_text("0 1 2\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "7"}
    bundle = subprocess.Popen(
        ["/bin/bash", str(run_dir / "node" / "bundle.sh"), str(run_dir), "0"], env=env
    )
    try:
        now = run_dir / "tasks" / "0" / "bundle_now"
        for _ in range(200):  # task 1 is running once the bundle names it
            if now.exists() and now.read_text().strip() == "1":
                break
            bundle.poll()
            assert bundle.returncode is None, "the bundle ended before task 1 ran"
            time.sleep(0.05)
        assert bundle_queues(run_dir) == {2: 1}
        run = RunRecord("r" * 32, "short", "s", "slurm", run_dir, 0.0, "submitted", "k", {})
        tasks = [
            TaskRecord("r", i, str(i), "7_0", TaskStatus(State.PENDING), 0.0) for i in range(3)
        ]
        updates = _merge_run(run, tasks, {"7_0": TaskStatus(State.RUNNING)}, time.time())
        assert updates[0].state is State.SUCCEEDED
        assert updates[1].state is State.RUNNING
        assert updates[2].state is State.PENDING
        assert updates[2].reason == "waits its turn in its bundle (task 1 runs)"
    finally:
        gate.touch()
        bundle.wait(timeout=30)
    assert [(run_dir / "tasks" / str(i) / "exit_code").read_text() for i in range(3)] == ["0\n"] * 3
    assert bundle_queues(run_dir) == {}  # the last task ran: nothing waits


# A stand-in apptainer for bundles: `instance start` makes a file per instance, `exec` into
# `instance://NAME` needs it, `instance stop` removes it; each container start is a line
# "start ..." in LOG/calls; the instance dies during the N-th exec into one if LOG/die-on-exec
# says N. The command runs with the APPTAINERENV_* values only (as with
# --cleanenv), in --pwd, with TMPDIR the container's /tmp on the host (its --workdir's tmp).
FAKE_APPTAINER = """\
#!/bin/bash
log=LOG
[ "$1" = -q ] && shift
verb=$1
[ "$verb" = instance ] && { verb="instance $2"; shift; }
shift
pwd_='' workdir=''
while [ $# -gt 0 ]; do
    case $1 in
        --cleanenv | --containall | --no-eval | --nv | --json) shift ;;
        --pwd) pwd_=$2; shift 2 ;;
        --workdir) workdir=$2; shift 2 ;;
        --bind) binds=$2; shift 2 ;;
        --*) shift 2 ;;
        *) break ;;
    esac
done
case $verb in
    "instance start")
        [ -e "$log/fail-start" ] && exit 255
        echo "start instance $2" >> "$log/calls"
        printf '%s\\n' "$workdir" > "$log/instances/$2"
        IFS=, read -r -a each <<< "$binds"
        for bind in "${each[@]}"; do  # mount points under /tmp, as Apptainer makes them
            target=${bind#*:} && target=${target%%:*}
            case $target in /tmp/*) mkdir -p "$workdir$target" && : > "$workdir$target/.bound" ;; esac
        done
        exit 0 ;;
    "instance list")
        if [ -e "$log/instances/$1" ]; then
            printf '{"instances": [{"instance": "%s", "pid": 1}]}\\n' "$1"
        else
            echo '{"instances": []}'
        fi
        exit 0 ;;
    "instance stop")
        echo "stop instance $1" >> "$log/calls"
        rm "$log/instances/$1" || exit 255
        exit 0 ;;
    exec) ;;
    *) exit 255 ;;
esac
case $1 in
    instance://*)
        name=${1#instance://}
        [ -e "$log/instances/$name" ] || { echo "no instance $name" >&2; exit 255; }
        echo "exec in instance $name" >> "$log/calls"
        n=$(( $(cat "$log/execs" 2>/dev/null || echo 0) + 1 )) && echo "$n" > "$log/execs"
        if [ "$(cat "$log/die-on-exec" 2>/dev/null)" = "$n" ]; then  # killed on the node
            rm "$log/instances/$name" && echo "instance $name died" >&2 && exit 255
        fi
        workdir=$(cat "$log/instances/$name") ;;
    *) echo "start exec $1" >> "$log/calls" ;;
esac
shift
cleaned=("TMPDIR=$workdir/tmp")
mkdir -p "$workdir/tmp"
for name in $(compgen -e); do
    case $name in APPTAINERENV_*) cleaned+=("${name#APPTAINERENV_}=${!name}") ;; esac
done
[ -z "$pwd_" ] || cd "$pwd_" || exit 255
exec env -i PATH=/usr/bin:/bin "${cleaned[@]}" "$@"
"""

# each task: what its /tmp held when it started (its own, but for the binds' mount points),
# its environment, a file left in /tmp; task 2 fails until LOG/fixed exists
PAYLOAD = (
    'find "$TMPDIR" -mindepth 1 > tmp_seen; env > env.$FCGTAINER_ATTEMPT; touch "$TMPDIR/left"; '
    'echo "attempt $FCGTAINER_ATTEMPT"; [ "$FCGTAINER_TASK" != 2 ] || [ -e LOG/fixed ]'
)


def _image_bundle(tmp_path: Path, tasks: int = 4, **site: Any) -> tuple[Path, Path, Plan]:
    """A run directory whose tasks 0..tasks-1 are Apptainer tasks in one bundle, each with
    retries 1, and the stand-in apptainer's directory."""
    fake = tmp_path / "fake"
    (fake / "instances").mkdir(parents=True)
    (fake / "bin").mkdir()
    binary = fake / "bin" / "apptainer"
    binary.write_text(FAKE_APPTAINER.replace("LOG", str(fake)))
    binary.chmod(0o755)
    (fake / "img.sif").write_bytes(b"SIF")
    job = Job.model_validate(
        {
            "name": "short",
            "command": ["sh", "-c", PAYLOAD.replace("LOG", str(fake))],
            "matrix": {"n": {"range": [0, tasks]}},
            "bundle": tasks,
        }
    )
    apptainer = {"binary": str(binary), "unpack": "never"}
    profile = {"apptainer": apptainer, "scratch": str(tmp_path / "scratch"), **site}
    site_ = _site(tmp_path / "runs", **profile)
    plan = make_plan(job, site_, {}, RUN, runtime="apptainer", image=str(fake / "img.sif"))
    run_dir = plan.run_dir
    node.install(run_dir)
    for task, argv in zip(
        plan.tasks, container.task_argvs(plan, plan.tasks, {"HOME": "/h"}), strict=True
    ):
        tdir = run_dir / "tasks" / str(task.index)
        tdir.mkdir(parents=True)
        (tdir / "argv").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (tdir / "retries").write_text("1\n")
    (run_dir / "bundles.txt").write_text(" ".join(map(str, range(tasks))) + "\n")
    return run_dir, fake, plan


def _calls(fake: Path) -> list[str]:
    path = fake / "calls"
    return path.read_text().splitlines() if path.exists() else []


def _starts(fake: Path) -> list[str]:
    """The container starts the stand-in apptainer saw."""
    return [c for c in _calls(fake) if c.startswith("start ")]


def _attempts(run_dir: Path, tasks: int) -> list[int]:
    return [len((run_dir / "tasks" / str(i) / "attempts").read_text().splitlines())
            for i in range(tasks)]  # fmt: skip


def _markers(run_dir: Path, tasks: int) -> list[str]:
    return [(run_dir / "tasks" / str(i) / "exit_code").read_text().strip() for i in range(tasks)]


def test_a_bundle_of_image_tasks_starts_its_container_once(tmp_path: Path) -> None:
    """4 tasks, one container start (an instance) for all; task 2 fails twice (retries 1)
    inside it; each task has its own marker, log, attempts, environment and an empty /tmp;
    the instance is stopped at the end. Fixed, task 2 is rerun alone: one start again."""
    run_dir, fake, _ = _image_bundle(tmp_path)
    done = _bundle_run(run_dir, fake / "bin")
    assert done.returncode == 0, done.stderr
    starts = _starts(fake)
    assert len(starts) == 1 and starts[0].startswith("start instance "), _calls(fake)
    assert _calls(fake).count(starts[0].replace("start", "exec in", 1)) == 5  # 1 + 1 + 2 + 1
    assert _calls(fake)[-1] == starts[0].replace("start", "stop", 1)
    assert not list((fake / "instances").iterdir()), "no instance left behind"
    assert not list((tmp_path / "scratch").glob("fcgtainer-*/instance.*")), "workdir left"
    assert _markers(run_dir, 4) == ["0", "0", "1", "0"]
    assert _attempts(run_dir, 4) == [1, 1, 2, 1]
    for i in range(4):
        log = (run_dir / "tasks" / str(i) / "task.log").read_text()
        assert "in its bundle's container" in log
        assert all(f"task {j} attempt" not in log for j in range(4) if j != i)  # its own log
        out = run_dir / "out" / str(i)
        seen = (out / "tmp_seen").read_text().splitlines()
        assert not any(p.endswith("/left") for p in seen), "a task sees another task's /tmp"
        if str(run_dir).startswith("/tmp/"):  # the run directory's bind is still there
            assert any(p.endswith(f"{run_dir}/.bound") for p in seen), seen
        env = (out / "env.1").read_text().splitlines()
        assert (
            f"FCGTAINER_TASK={i}" in env and sum(k.startswith("FCGTAINER_TASK=") for k in env) == 1
        )
        assert f"FCGTAINER_SPEC={run_dir}/tasks/{i}/spec.json" in env
        assert not any(k.startswith(("FCG_INSTANCE", "FCG_IN_BUNDLE", "SLURM_")) for k in env)
    assert "attempt 2" in (run_dir / "tasks" / "2" / "task.log").read_text()

    (fake / "fixed").touch()
    (fake / "calls").unlink()
    assert _bundle_run(run_dir, fake / "bin").returncode == 0
    assert len(_starts(fake)) == 1 and sum(c.startswith("exec in") for c in _calls(fake)) == 1
    assert _attempts(run_dir, 4) == [1, 1, 3, 1] and _markers(run_dir, 4) == ["0"] * 4
    assert not list((fake / "instances").iterdir())


def test_an_instance_killed_mid_bundle_is_started_again_and_its_task_rerun(
    tmp_path: Path,
) -> None:
    """The instance dies while task 1 runs in it: a new instance, task 1 again in it (its
    failed attempt recorded), tasks 2 and 3 in the new one; nothing left behind."""
    run_dir, fake, _ = _image_bundle(tmp_path)
    (fake / "fixed").touch()
    (fake / "die-on-exec").write_text("2\n")
    done = _bundle_run(run_dir, fake / "bin")
    assert done.returncode == 0, done.stderr
    assert "is gone (killed on the node?): a new one, and task 1 again in it" in done.stderr
    first, second = (c.removeprefix("start instance ") for c in _starts(fake))
    execs = [c.removeprefix("exec in instance ") for c in _calls(fake) if c.startswith("exec")]
    assert execs == [first, first, second, second, second]
    assert _markers(run_dir, 4) == ["0"] * 4 and _attempts(run_dir, 4) == [1, 2, 1, 1]
    assert not list((fake / "instances").iterdir()), "no instance left behind"
    assert not list((tmp_path / "scratch").glob("fcgtainer-*/instance.*")), "workdir left"


def test_a_task_alone_starts_its_own_container(tmp_path: Path) -> None:
    """The wrapper outside a bundle: a container start of its own, as before bundles."""
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=2)
    env = {"PATH": f"{fake / 'bin'}:{os.environ['PATH']}", "FCG_INSTANCE": "nothing-here"}
    argv = ["bash", str(run_dir / "wrapper.sh"), str(run_dir), "1"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert _starts(fake) == [f"start exec {fake / 'img.sif'}"]


def test_each_task_starts_its_own_container_where_none_can_be_shared(tmp_path: Path) -> None:
    """The instance fails to start: every task starts its own, and all run."""
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=3)
    (fake / "fail-start").touch()
    (fake / "fixed").touch()
    done = _bundle_run(run_dir, fake / "bin")
    assert "each task starts its own container" in done.stderr
    assert _starts(fake) == [f"start exec {fake / 'img.sif'}"] * 3
    assert _markers(run_dir, 3) == ["0"] * 3


@pytest.mark.parametrize(
    ("option", "marker"),
    [(("--bind", "/srv:/extra:ro"), "0"), (("--gpus", "1"), "86")],  # no GPU here: exit 86
    ids=["bind", "gpus"],
)
def test_a_task_with_other_options_starts_its_own_container(
    tmp_path: Path, option: tuple[str, str], marker: str
) -> None:
    """Task 1's launcher options differ (another bind, GPUs): it alone starts its own
    container; the others share the bundle's."""
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=3)
    (fake / "fixed").touch()
    argv_path = run_dir / "tasks" / "1" / "argv"
    argv = argv_path.read_bytes().split(b"\0")[:-1]
    at = argv.index(b"--")
    argv[at:at] = [a.encode() for a in option]
    argv_path.write_bytes(b"".join(a + b"\0" for a in argv))
    assert _bundle_run(run_dir, fake / "bin").returncode == 0
    starts = _starts(fake)
    assert starts[0].startswith("start instance ") and starts[1:] == [
        f"start exec {fake / 'img.sif'}"
    ]  # 86 (no GPU) is not tried again
    assert sum(c.startswith("exec in") for c in _calls(fake)) == 2
    assert _markers(run_dir, 3) == ["0", marker, "0"]


def test_under_cvmfsexec_each_task_starts_its_own_container(tmp_path: Path) -> None:
    """A repository mounted by cvmfsexec (its mount lives as long as the command it wraps):
    no shared container, each task starts its own under cvmfsexec."""
    cvmfsexec = tmp_path / "cvmfsexec"
    cvmfsexec.write_text('#!/bin/bash\nwhile [ "$1" != -- ]; do shift; done\nshift\nexec "$@"\n')
    cvmfsexec.chmod(0o755)
    site = {"cvmfs": {"repositories": {"x.cern.ch": "cvmfsexec"},
                      "cvmfsexec": {"path": str(cvmfsexec)}}}  # fmt: skip
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=3, **site)
    argvs = []
    for i in range(3):  # the job needs the repository
        argv_path = run_dir / "tasks" / str(i) / "argv"
        argv = argv_path.read_bytes().split(b"\0")[:-1]
        at = argv.index(b"--")
        argv[at:at] = [b"--repo-cvmfsexec", b"x.cern.ch", b"--cvmfsexec", str(cvmfsexec).encode()]
        argv_path.write_bytes(b"".join(a + b"\0" for a in argv))
        argvs.append(argv)
    (fake / "fixed").touch()
    done = _bundle_run(run_dir, fake / "bin")
    assert "no shared container under cvmfsexec" in done.stderr
    assert _starts(fake) == [f"start exec {fake / 'img.sif'}"] * 3
    assert _markers(run_dir, 3) == ["0"] * 3


def test_native_tasks_of_a_bundle_start_no_container(tmp_path: Path) -> None:
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=2)
    for i in range(2):
        (run_dir / "tasks" / str(i) / "argv").write_bytes(b"true\0")
    assert _bundle_run(run_dir, fake / "bin").returncode == 0
    assert _calls(fake) == [] and _markers(run_dir, 2) == ["0", "0"]


def test_no_instance_is_left_behind_when_the_bundle_is_stopped(tmp_path: Path) -> None:
    """SIGTERM to the bundle while its task 1 runs: the task ends, no later task starts, and
    the instance is stopped."""
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=3)
    gate = tmp_path / "running"
    (run_dir / "tasks" / "1" / "argv").write_bytes(
        (run_dir / "tasks" / "1" / "argv")
        .read_bytes()
        .replace(PAYLOAD.replace("LOG", str(fake)).encode(), f"touch {gate}; sleep 60".encode())
    )
    env = {"PATH": f"{fake / 'bin'}:{os.environ['PATH']}"}
    bundle = subprocess.Popen(
        ["/bin/bash", str(run_dir / "node" / "bundle.sh"), str(run_dir), "0"], env=env
    )
    try:
        for _ in range(400):
            if gate.exists():
                break
            assert bundle.poll() is None, "the bundle ended before task 1 ran"
            time.sleep(0.05)
        assert len(list((fake / "instances").iterdir())) == 1
        bundle.terminate()
        assert bundle.wait(timeout=30) == 143
    finally:
        if bundle.poll() is None:
            bundle.kill()
    assert not list((fake / "instances").iterdir()), "the instance outlived its bundle"
    assert _calls(fake)[-1].startswith("stop instance ")
    assert not (run_dir / "tasks" / "2" / "attempts").exists(), "a task ran after SIGTERM"
    assert (run_dir / "tasks" / "1" / "exit_code").read_text().strip() != "0"


def test_a_killed_bundles_instance_is_stopped_by_the_next_bundle(tmp_path: Path) -> None:
    """SIGKILL leaves no trap to run: the next bundle on the node stops the instance whose
    bundle (the pid its name ends with) is gone, and leaves a live bundle's alone."""
    run_dir, fake, _ = _image_bundle(tmp_path, tasks=1)
    (fake / "fixed").touch()
    gone = subprocess.Popen(["true"])
    gone.wait()
    node_dir = tmp_path / "scratch" / f"fcgtainer-{os.getuid()}"
    node_dir.mkdir(parents=True)
    for name in (f"fcgtainer-5-{gone.pid}", f"fcgtainer-6-{os.getpid()}"):
        (node_dir / f"instance.{name}").mkdir()
        (node_dir / f"instance.{name}.key").write_text("1 2\n")
        (fake / "instances" / name).write_text(f"{node_dir}/instance.{name}\n")
    done = _bundle_run(run_dir, fake / "bin")
    assert f"stopped apptainer instance fcgtainer-5-{gone.pid}" in done.stderr
    assert sorted(p.name for p in (fake / "instances").iterdir()) == [f"fcgtainer-6-{os.getpid()}"]
    assert sorted(p.name for p in node_dir.glob("instance.*")) == [
        f"instance.fcgtainer-6-{os.getpid()}",
        f"instance.fcgtainer-6-{os.getpid()}.key",
    ]
