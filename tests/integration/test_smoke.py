"""Smoke tests: each component of the testbed is real and runs a container job.

The image is ``recipes/debian-smoke.def`` (Debian 12, Python 3.11) built with
``apptainer build --fakeroot``. The testbed itself is Debian sid (Python 3.14), so a job
that reports Python 3.11 provably ran inside the container.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., subprocess.CompletedProcess[str]]
Wait = Callable[[Callable[[], object], float, str], object]

IMAGE_PYTHON = "3.11."  # bookworm's python3; the testbed's own is newer
SANDBOX_NOTE = "Converting SIF file to temporary sandbox"

# Writes "<label> <job id> <python version>" to the file named by its first argument.
WRITE_REPORT = (
    "import sys; label, job, out = sys.argv[1:4]; "
    "open(out, 'w').write(f'{label} {job} {sys.version.split()[0]}\\n')"
)


def container_job_script(image: Path, directory: Path, label: str) -> Path:
    """A POSIX shell job: `apptainer exec` the image, which writes report.txt in directory.

    The job picks `--unsquash` itself when /dev/fuse is not usable on the node it lands on,
    as fcgtainer must. The job id is SLURM_JOB_ID or else the script's first argument.
    """
    report = directory / "report.txt"
    python = shlex.join(["python3", "-c", WRITE_REPORT, label])
    script = directory / f"{label}-job.sh"
    script.write_text(
        "#!/bin/sh\n"
        "set -eu\n"
        'PATH="/usr/local/bin:/usr/bin:/bin:$PATH"\n'
        'job="${SLURM_JOB_ID:-$1}"\n'
        "flags=\n"
        "if ! [ -r /dev/fuse ] || ! [ -w /dev/fuse ]; then flags=--unsquash; fi\n"
        f"apptainer exec $flags --bind {shlex.quote(str(directory))} "
        f'{shlex.quote(str(image))} {python} "$job" {shlex.quote(str(report))}\n'
    )
    script.chmod(0o755)
    return report


def read_report(report: Path, label: str, job_id: str) -> None:
    """Check the file a container job wrote: its label, job id and the image's Python."""
    assert report.exists(), f"the {label} job did not write {report}"
    got_label, got_job, python = report.read_text().split()
    assert (got_label, got_job) == (label, job_id)
    assert python.startswith(IMAGE_PYTHON), f"ran with Python {python}: not in the image?"


# ---------------------------------------------------------------- Apptainer


@pytest.mark.integration
@pytest.mark.fuse
@pytest.mark.apptainer
def test_image_builds_with_fakeroot_and_runs(smoke_image: Path, node, run_command: Run) -> None:
    """The smoke recipe builds with --fakeroot and its Python runs in the container."""
    labels = run_command(["apptainer", "inspect", "--labels", str(smoke_image)]).stdout
    assert "org.fcgtainer.recipe: debian-smoke" in labels
    out = run_command([*node.apptainer_exec, str(smoke_image), "python3", "--version"])
    assert out.stdout.split()[1].startswith(IMAGE_PYTHON)


@pytest.mark.integration
@pytest.mark.fuse
@pytest.mark.apptainer
def test_sif_runtime_follows_fuse(smoke_image: Path, node, run_command: Run) -> None:
    """With /dev/fuse usable the SIF is mounted; without it exec needs --unsquash.

    run-integration runs this once per FUSE state of the testbed node.
    """
    if node.fuse_declared is not None:
        assert node.fuse_declared == ("open" if node.fuse_open else "closed")
    plain = run_command(["apptainer", "exec", str(smoke_image), "true"], check=False)
    unsquash = run_command(["apptainer", "exec", "--unsquash", str(smoke_image), "true"])
    assert SANDBOX_NOTE in unsquash.stderr
    if node.fuse_open:
        assert plain.returncode == 0, plain.stderr
        assert SANDBOX_NOTE not in plain.stderr  # mounted through squashfuse, not copied
    elif node.squashfuse:
        # Apptainer tries squashfuse, which cannot open /dev/fuse, and gives up.
        assert plain.returncode != 0
        assert "/dev/fuse: Permission denied" in plain.stderr
    else:
        assert plain.returncode == 0, plain.stderr
        assert SANDBOX_NOTE in plain.stderr


# ---------------------------------------------------------------- SLURM


def sacct_state(run_command: Run, job_id: str) -> tuple[str, str] | None:
    """(State, ExitCode) of a finished job from sacct, or None while it is not final."""
    out = run_command(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State,ExitCode"]).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    if not lines:
        return None
    state, exit_code = lines[-1].split("|")
    return None if state in ("PENDING", "RUNNING", "COMPLETING") else (state, exit_code)


def sbatch_wait(run_command: Run, argv: list[str], submitted_jobs) -> str:
    """Submit with `sbatch --parsable --wait`, register the job and return its id."""
    proc = run_command(["sbatch", "--parsable", "--wait", *argv], timeout=300, check=False)
    match = re.match(r"(\d+)", proc.stdout)
    assert match, f"sbatch gave no job id: {proc.stdout!r} {proc.stderr!r}"
    submitted_jobs.slurm.append(match.group(1))
    return match.group(1)


@pytest.mark.integration
@pytest.mark.fuse
@pytest.mark.slurm
@pytest.mark.apptainer
def test_slurm_job_runs_container(
    smoke_image: Path, shared_tmp_path: Path, run_command: Run, wait_until: Wait, submitted_jobs
) -> None:
    """An sbatch job runs `apptainer exec`; the file it writes and sacct prove it."""
    report = container_job_script(smoke_image, shared_tmp_path, "slurm")
    script = shared_tmp_path / "slurm-job.sh"
    output = shared_tmp_path / "slurm-%j.out"
    job_id = sbatch_wait(run_command, ["-J", "fcg-smoke", "-o", str(output), str(script)],
                         submitted_jobs)  # fmt: skip
    log = (shared_tmp_path / f"slurm-{job_id}.out").read_text(errors="replace")
    assert report.exists(), f"no report; job output:\n{log}"
    read_report(report, "slurm", job_id)
    assert wait_until(lambda: sacct_state(run_command, job_id), 60, "sacct") == ("COMPLETED", "0:0")


@pytest.mark.integration
@pytest.mark.slurm
def test_sacct_reports_failed_exit_code(
    shared_tmp_path: Path, run_command: Run, wait_until: Wait, submitted_jobs
) -> None:
    """A job that exits 3 is FAILED with ExitCode 3:0 in sacct (slurmdbd accounting)."""
    job_id = sbatch_wait(
        run_command,
        ["-J", "fcg-exit3", "-o", str(shared_tmp_path / "slurm-%j.out"), "--wrap", "exit 3"],
        submitted_jobs,
    )
    assert wait_until(lambda: sacct_state(run_command, job_id), 60, "sacct") == ("FAILED", "3:0")


# ---------------------------------------------------------------- HTCondor


@pytest.mark.integration
@pytest.mark.fuse
@pytest.mark.htcondor
@pytest.mark.apptainer
def test_htcondor_job_runs_container(
    smoke_image: Path, shared_tmp_path: Path, run_command: Run, wait_until: Wait, submitted_jobs
) -> None:
    """A vanilla-universe job runs `apptainer exec`; the file it writes and history prove it."""
    report = container_job_script(smoke_image, shared_tmp_path, "htcondor")
    submit = shared_tmp_path / "job.sub"
    submit.write_text(
        f"executable = {shared_tmp_path / 'htcondor-job.sh'}\n"
        "arguments = $(ClusterId)\n"
        f"initialdir = {shared_tmp_path}\n"
        "output = htcondor.out\nerror = htcondor.err\nlog = htcondor.log\n"
        "should_transfer_files = NO\n"
        "request_cpus = 1\nrequest_memory = 256M\n"
        "queue\n"
    )
    out = run_command(["condor_submit", "-terse", str(submit)]).stdout
    cluster = out.split(".")[0].strip()
    submitted_jobs.htcondor.append(cluster)
    run_command(["condor_wait", "-wait", "180", str(shared_tmp_path / "htcondor.log")], timeout=200)
    err = (shared_tmp_path / "htcondor.err").read_text(errors="replace")
    assert report.exists(), f"no report; job stderr:\n{err}"
    read_report(report, "htcondor", cluster)

    def history() -> tuple[str, ...] | None:
        argv = ["condor_history", cluster, "-limit", "1", "-af", "JobStatus", "ExitCode"]
        fields = tuple(run_command(argv).stdout.split())
        return fields or None

    assert wait_until(history, 30, "condor_history") == ("4", "0")  # 4 = Completed


@pytest.mark.integration
@pytest.mark.htcondor
def test_htcondor_bindings_match_pool(run_command: Run) -> None:
    """The htcondor2 Python bindings in the venv are the pool's own version."""
    import htcondor2  # an ImportError fails the test: the testbed's venv must have it

    pool = re.search(r"\$CondorVersion: (\S+)", run_command(["condor_version"]).stdout)
    bindings = re.search(r"\$CondorVersion: (\S+)", htcondor2.version())
    assert pool and bindings and pool.group(1) == bindings.group(1)
    slots = htcondor2.Collector().query(htcondor2.AdTypes.Startd, projection=["Name"])
    assert slots, "the bindings see no slot in the pool"
