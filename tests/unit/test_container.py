"""The container argv and its node-side launcher, run against a stand-in ``apptainer``.

The stand-in records its argv and environment and runs the command after the image with
the ``APPTAINERENV_*`` variables (as Apptainer does with ``--cleanenv``), so the launcher's
decisions (binds, workdir, --nv, unpacking, CVMFS, exit codes) are checked without Apptainer.
"""

from __future__ import annotations

import os
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from fcgtainer import node, states
from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.plan import container
from fcgtainer.plan.tasks import Plan, make_plan
from fcgtainer.runs.rundir import write_secret_env

pytestmark = pytest.mark.unit

FAKE_APPTAINER = """\
#!/bin/bash
# stand-in for apptainer: records argv and env, runs the command after the image
log={log}
image={image}
if [ "$1" = -q ]; then shift; fi
if [ "$1" = build ]; then
    echo build >> "$log/calls"
    mkdir -p "$3/bin"
    exit 0
fi
echo "$1" >> "$log/calls"
printf '%s\\0' "$@" > "$log/argv"
env -0 > "$log/env"
shift
while [ $# -gt 0 ]; do
    case $1 in
        --cleanenv | --containall | --no-eval | --nv) shift ;;
        --*) shift 2 ;;
        *) break ;;
    esac
done
shift  # the image ({image} or an unpacked sandbox)
[ $# -gt 0 ] || exit 0
cleaned=()
while IFS= read -r -d '' kv; do
    case $kv in APPTAINERENV_*) cleaned+=("${{kv#APPTAINERENV_}}") ;; esac
done < "$log/env"
exec env -i PATH=/usr/bin:/bin "${{cleaned[@]}}" "$@"
"""


def argv_with_env(plan: Plan, host: dict[str, str]) -> list[str]:
    """A task's argv, with the run's env file written as ``submit`` writes it."""
    write_secret_env(plan, host)
    return container.task_argv(plan, plan.tasks[0], host)


def executable(path: Path, text: str) -> Path:
    """Write an executable script."""
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    """A directory with a stand-in apptainer and an image file; logs go there too."""
    log = tmp_path / "fake"
    (log / "bin").mkdir(parents=True)
    image = log / "img.sif"
    image.write_bytes(b"SIF")
    executable(log / "bin" / "apptainer", FAKE_APPTAINER.format(log=log, image=image))
    return log


def make(
    tmp_path: Path,
    fake: Path,
    *,
    command: tuple[str, ...] = ("env",),
    site: dict[str, object] | None = None,
    job: dict[str, object] | None = None,
) -> Plan:
    """An apptainer plan for a one-task job whose image is the fake's."""
    job_dir = tmp_path / "job"
    job_dir.mkdir(exist_ok=True)
    site_data: dict[str, object] = {
        "runs_dir": str(tmp_path / "runs"),
        "scratch": str(fake / "node"),
        "apptainer": {"binary": str(fake / "bin" / "apptainer"), "unpack": "never"},
        "env": {"allow": ["LANG"], "set": {"FOO": "bar"}},
    }
    site_data.update(site or {})
    plan = make_plan(
        Job.model_validate({"name": "t", "command": list(command), **(job or {})}).model_copy(
            update={"job_dir": str(job_dir)}
        ),
        Site.model_validate(site_data),
        {},
        "0123456789abcdef",
        runtime="apptainer",
        image=str(fake / "img.sif"),
    )
    plan.out_dir(0).mkdir(parents=True)
    node.install(plan.run_dir)
    return plan


def run(
    argv: list[str], cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run an argv as a batch system would: with the submitter's secrets in the env."""
    env = {"PATH": os.environ["PATH"], "AWS_SECRET": "s3cr3t", "HOME": str(cwd)}
    env.update(extra_env or {})
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def recorded(fake: Path) -> tuple[list[str], dict[str, str]]:
    """The argv and environment the stand-in apptainer was started with."""
    argv = (fake / "argv").read_text().split("\0")[:-1]
    env = dict(kv.split("=", 1) for kv in (fake / "env").read_text().split("\0") if kv)
    return argv, env


def test_argv_is_the_launcher_then_the_payload(tmp_path: Path, fake: Path) -> None:
    plan = make(tmp_path, fake, command=("python3", "-m", "x", "{spec}"))
    argv = container.task_argv(plan, plan.tasks[0], {"HOME": "/h", "LANG": "C"})
    assert argv[:2] == ["/bin/bash", str(plan.run_dir / "node" / "launch.sh")]
    assert argv[-4:] == ["python3", "-m", "x", str(plan.task_dir(0) / "spec.json")]
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    # the image's own copy of jobs/ runs: the checkout is not bound over it
    assert not any(b.startswith(f"{plan.job.job_dir}:") for b in binds)
    assert f"{plan.run_dir}:{plan.run_dir}:rw" in binds


def test_only_the_allow_list_reaches_the_container(tmp_path: Path, fake: Path) -> None:
    plan = make(tmp_path, fake)
    host = {"HOME": "/h", "LANG": "C", "AWS_SECRET": "s3cr3t"}
    done = run(argv_with_env(plan, host), plan.out_dir(0))
    assert done.returncode == 0, done.stderr
    argv, env = recorded(fake)
    assert "s3cr3t" not in (fake / "env").read_text()
    forwarded = {k.removeprefix("APPTAINERENV_"): v for k, v in env.items() if "ENV_" in k}
    assert forwarded["LANG"] == "C" and forwarded["FOO"] == "bar"
    assert forwarded["FCGTAINER_TASK"] == "0"
    assert set(env) - {k for k in env if k.startswith("APPTAINERENV_")} <= {
        "PATH",
        "HOME",
        "PWD",
        "SHLVL",
        "_",
    }  # the last three: bash
    inside = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert "AWS_SECRET" not in inside and inside["FOO"] == "bar"
    assert argv[:5] == ["exec", "--cleanenv", "--containall", "--no-eval", "--workdir"]
    assert argv[5].startswith(str(fake / "node" / f"fcgtainer-{os.getuid()}" / "work."))
    assert not Path(argv[5]).exists(), "the per-task workdir is removed afterwards"
    assert argv[argv.index("--pwd") + 1] == str(plan.out_dir(0))
    assert "--nv" not in argv
    assert f"{fake / 'node'}:{fake / 'node'}:rw" in argv[argv.index("--bind") + 1]
    assert forwarded["FCGTAINER_SCRATCH"] == str(fake / "node")


HOSTILE = ["a 0", "a'; echo foo", 'a"=0"', "$(touch x)", "two\nlines", "semi;colon,comma:colon"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_env_values_arrive_unchanged(tmp_path: Path, fake: Path, value: str) -> None:
    plan = make(tmp_path, fake, command=("printenv", "FOO"), site={"env": {"set": {"FOO": value}}})
    done = run(argv_with_env(plan, {"HOME": "/h"}), plan.out_dir(0))
    assert done.returncode == 0, done.stderr
    assert done.stdout == value + "\n"
    assert not (plan.out_dir(0) / "x").exists()


def test_scratch_template_is_expanded_on_the_node(tmp_path: Path, fake: Path) -> None:
    plan = make(tmp_path, fake, site={"scratch": "$NODE_TMP/sub"})
    node_tmp = tmp_path / "nodetmp"
    done = run(
        argv_with_env(plan, {"HOME": "/h"}),
        plan.out_dir(0),
        {"NODE_TMP": str(node_tmp)},
    )
    assert done.returncode == 0, done.stderr
    argv, env = recorded(fake)
    assert argv[5].startswith(str(node_tmp / "sub" / f"fcgtainer-{os.getuid()}"))
    assert env["APPTAINERENV_FCGTAINER_SCRATCH"] == str(node_tmp / "sub")


def test_gpu_task_gets_nv_and_fails_fast_without_a_gpu(tmp_path: Path, fake: Path) -> None:
    plan = make(tmp_path, fake, command=("true",), job={"resources": {"gpus": 1}})
    argv = argv_with_env(plan, {"HOME": "/h"})
    done = run(argv, plan.out_dir(0), {"CUDA_VISIBLE_DEVICES": "3"})
    assert done.returncode == states.EXIT_NO_GPU, done.stderr
    assert "GPU(s) requested but none is visible" in done.stderr
    argv, env = recorded(fake)
    assert "--nv" in argv and env["APPTAINERENV_CUDA_VISIBLE_DEVICES"] == "3"


def test_gpu_check_passes_when_a_gpu_is_listed(tmp_path: Path) -> None:
    executable(tmp_path / "nvidia-smi", "#!/bin/sh\necho 'GPU 0: Tesla V100 (UUID: x)'\n")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    argv = ["sh", str(node.source_dir() / "inner.sh"), "1", "", "echo", "ran"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "ran\n"


def test_unpacks_once_per_node_and_reuses(tmp_path: Path, fake: Path) -> None:
    plan = make(
        tmp_path,
        fake,
        command=("true",),
        site={"apptainer": {"binary": str(fake / "bin" / "apptainer"), "unpack": "always"}},
    )
    argv = argv_with_env(plan, {"HOME": "/h"})
    for _ in range(3):
        done = run(argv, plan.out_dir(0))
        assert done.returncode == 0, done.stderr
    calls = (fake / "calls").read_text().split()
    assert calls == ["build", "exec", "exec", "exec"]
    used, _ = recorded(fake)
    sandbox = next(a for a in used if "/images/" in a)
    assert Path(sandbox).is_dir() and Path(sandbox + ".complete").exists()


def test_concurrent_tasks_unpack_once(tmp_path: Path, fake: Path) -> None:
    slow = (
        (fake / "bin" / "apptainer").read_text().replace("echo build >>", "sleep 1; echo build >>")
    )
    executable(fake / "bin" / "apptainer", slow)
    plan = make(
        tmp_path,
        fake,
        command=("true",),
        site={"apptainer": {"binary": str(fake / "bin" / "apptainer"), "unpack": "always"}},
    )
    argv = argv_with_env(plan, {"HOME": "/h"})
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    procs = [subprocess.Popen(argv, cwd=plan.out_dir(0), env=env) for _ in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert (fake / "calls").read_text().split().count("build") == 1


# --- CVMFS, driving the launcher directly (a private CVMFS root stands in for /cvmfs) ------


def launch(
    fake: Path, tmp_path: Path, *options: str, path_prefix: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the launcher with the fake apptainer and ``options``, the payload ``true``."""
    argv = ["bash", str(node.source_dir() / "launch.sh")]
    argv += ["--apptainer", str(fake / "bin" / "apptainer"), "--image", str(fake / "img.sif")]
    argv += ["--unpack", "never", "--scratch", str(fake / "node"), *options, "--", "true"]
    env = {"PATH": f"{path_prefix}{os.environ['PATH']}", "HOME": str(tmp_path)}
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def fake_cvmfsexec(path: Path, *, smoke_ok: bool = True) -> Path:
    """A cvmfsexec that logs its repositories and runs what follows ``--``."""
    return executable(
        path,
        textwrap.dedent(
            f"""\
            #!/bin/bash
            repos=()
            while [ "$1" != -- ]; do repos+=("$1"); shift; done
            shift
            echo "${{repos[*]}} :: $*" >> {path}.log
            if [ "$*" = /bin/true ] && [ {int(smoke_ok)} = 0 ]; then
                echo "fuse: device not found" >&2; exit 1
            fi
            exec "$@"
            """
        ),
    )


def test_cvmfs_on_the_host_is_bound(tmp_path: Path, fake: Path) -> None:
    root = tmp_path / "cvmfs"
    (root / "sft.cern.ch" / "lcg").mkdir(parents=True)
    done = launch(fake, tmp_path, "--cvmfs-root", str(root), "--repo", "sft.cern.ch")
    assert done.returncode == 0, done.stderr
    argv, _ = recorded(fake)
    assert f"{root}/sft.cern.ch:/cvmfs/sft.cern.ch:ro" in argv[argv.index("--bind") + 1]


def test_cvmfs_missing_goes_through_cvmfsexec(tmp_path: Path, fake: Path) -> None:
    exe = fake_cvmfsexec(tmp_path / "cvmfsexec")
    opts = ["--cvmfs-root", str(tmp_path / "nocvmfs"), "--cvmfsexec", str(exe)]
    done = launch(fake, tmp_path, *opts, "--repo", "sft.cern.ch", "--repo", "lhcb.cern.ch")
    assert done.returncode == 0, done.stderr
    log = (tmp_path / "cvmfsexec.log").read_text().splitlines()
    assert log[0] == "sft.cern.ch lhcb.cern.ch :: /bin/true"  # the smoke test first
    assert log[1].startswith("sft.cern.ch lhcb.cern.ch :: ") and "apptainer exec" in log[1]
    argv, _ = recorded(fake)
    assert "/cvmfs/lhcb.cern.ch:/cvmfs/lhcb.cern.ch:ro" in argv[argv.index("--bind") + 1]


def test_cvmfsexec_failing_its_smoke_test_exits_87(tmp_path: Path, fake: Path) -> None:
    exe = fake_cvmfsexec(tmp_path / "cvmfsexec", smoke_ok=False)
    opts = ["--cvmfs-root", str(tmp_path / "nocvmfs"), "--cvmfsexec", str(exe)]
    done = launch(fake, tmp_path, *opts, "--repo", "sft.cern.ch")
    assert done.returncode == states.EXIT_NO_CVMFS
    assert "smoke test" in done.stderr and "fuse: device not found" in done.stderr
    assert not (fake / "calls").exists(), "apptainer never started"


def test_no_cvmfs_and_no_cvmfsexec_exits_87(tmp_path: Path, fake: Path) -> None:
    opts = ["--cvmfs-root", str(tmp_path / "nocvmfs"), "--cvmfsexec", "/nonexistent/cvmfsexec"]
    done = launch(fake, tmp_path, *opts, "--repo", "sft.cern.ch")
    assert done.returncode == states.EXIT_NO_CVMFS
    assert "cvmfsexec not found" in done.stderr


def test_a_hung_cvmfs_probe_times_out(tmp_path: Path, fake: Path) -> None:
    hang = tmp_path / "hang"
    hang.mkdir()
    executable(hang / "ls", "#!/bin/sh\nexec sleep 300\n")
    root = tmp_path / "cvmfs"
    (root / "sft.cern.ch").mkdir(parents=True)
    start = time.monotonic()
    done = launch(
        fake,
        tmp_path,
        "--cvmfs-root",
        str(root),
        "--probe-timeout",
        "1",
        "--repo",
        "sft.cern.ch",
        path_prefix=f"{hang}:",
    )
    elapsed = time.monotonic() - start
    assert done.returncode == states.EXIT_NO_CVMFS
    assert "did not answer within 1 s" in done.stderr
    assert elapsed < 30


def test_cvmfs_repos_follow_job_and_site(tmp_path: Path, fake: Path) -> None:
    plan = make(
        tmp_path,
        fake,
        job={"cvmfs": ["lhcb.cern.ch", "atlas.cern.ch"], "lcg_view": "LCG_105a/x86_64-el9"},
        site={"cvmfs": {"repositories": {"atlas.cern.ch": "none"}}},
    )
    assert container.cvmfs_repos(plan) == ["lhcb.cern.ch", "sft.cern.ch"]
    argv = argv_with_env(plan, {"HOME": "/h"})
    assert argv[argv.index("--lcg-view") + 1] == "LCG_105a/x86_64-el9"


def test_shell_argv_is_the_task_argv_with_a_shell(tmp_path: Path, fake: Path) -> None:
    """Same launcher, options and Apptainer flags as the task; only the mode differs."""
    plan = make(tmp_path, fake)
    task = argv_with_env(plan, {"HOME": "/h"})
    shell = container.shell_argv(plan, plan.tasks[0], ["printenv", "FOO"], {"HOME": "/h"})
    mode = task.index("--mode") + 1
    assert (task[mode], shell[mode]) == ("exec", "shell")
    assert shell[:mode] + shell[mode + 1 : shell.index("--")] == (
        task[:mode] + task[mode + 1 : task.index("--")]
    )
    assert shell[shell.index("--") :] == ["--", "printenv", "FOO"]

    def apptainer_flags(argv: list[str]) -> list[str]:
        """The recorded apptainer argv without the verb and the per-run workdir."""
        at = argv.index("--workdir")
        return argv[1:at] + argv[at + 2 : argv.index(str(fake / "img.sif")) + 1]

    assert run(task, plan.out_dir(0)).returncode == 0
    as_task, _ = recorded(fake)
    done = run(shell, plan.out_dir(0))
    assert done.returncode == 0 and done.stdout == "bar\n"
    with_command, _ = recorded(fake)
    interactive = container.shell_argv(plan, plan.tasks[0], [], {"HOME": "/h"})
    assert run(interactive, plan.out_dir(0)).returncode == 0
    bare, _ = recorded(fake)
    assert (as_task[0], with_command[0], bare[0]) == ("exec", "exec", "shell")
    assert apptainer_flags(with_command) == apptainer_flags(as_task) == apptainer_flags(bare)
    assert bare[-1] == str(fake / "img.sif"), "an interactive shell runs nothing after the image"


# --- fcgtainer shell ------------------------------------------------------------------------


def test_shell_command_runs_in_the_image_with_task_env(tmp_path: Path, fake: Path) -> None:
    import sys

    site = tmp_path / "site.yaml"
    site.write_text(
        f"runtime: apptainer\nruns_dir: {tmp_path}/runs\nscratch: {fake}/node\n"
        f"apptainer: {{binary: {fake}/bin/apptainer, unpack: never}}\n"
        "env: {allow: [LANG], set: {FOO: bar}}\n"
    )
    exe = Path(sys.executable).parent / "fcgtainer"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_SECRET": "s3cr3t"}
    done = subprocess.run(
        [str(exe), "shell", "--site", str(site), "--image", str(fake / "img.sif"), "--", "env"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    inside = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert inside["FOO"] == "bar" and "AWS_SECRET" not in inside
    assert Path(inside["FCGTAINER_SPEC"]).is_file()
    argv, _ = recorded(fake)
    assert argv[0] == "exec" and "--containall" in argv


def test_shell_without_apptainer_here_says_so_before_the_image(tmp_path: Path) -> None:
    from fcgtainer.errors import PreflightError
    from fcgtainer.runs.shell import shell_command

    site = tmp_path / "site.yaml"
    site.write_text(f"runs_dir: {tmp_path}/runs\napptainer: {{binary: no-such-apptainer}}\n")
    with pytest.raises(PreflightError, match="no-such-apptainer is not on this host's PATH"):
        shell_command(str(site), None, None, [])


def test_on_node_prefix_asks_the_scheduler(tmp_path: Path, fake: Path) -> None:
    from fcgtainer.runs.shell import on_node_prefix

    plan = make(
        tmp_path,
        fake,
        site={"scheduler": "slurm", "slurm": {"partition": "gpu", "account": "acc"},
              "gpus": {"count": 2}},
        job={"resources": {"cpus": 4, "memory": "8GiB", "gpus": 1, "walltime": "02:00:00"}},
    )  # fmt: skip
    argv = on_node_prefix(plan.site, plan)
    assert argv[:2] == ["srun", "--pty"]
    assert {"--cpus-per-task=4", "--mem=8192M", "--time=120", "--partition=gpu"} <= set(argv)
    assert "--account=acc" in argv and "--gres=gpu:1" in argv
    (tmp_path / "c").mkdir()
    condor = make(tmp_path / "c", fake, site={"scheduler": "htcondor"})
    assert on_node_prefix(condor.site, condor)[:2] == ["condor_submit", "-interactive"]
