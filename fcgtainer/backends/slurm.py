"""The SLURM backend: one ``sbatch --array`` per run, ``squeue`` then ``sacct`` for status.

Options reach ``sbatch`` as argv elements (never parsed by a shell or by ``#SBATCH``
comments); the batch script goes on standard input and only starts the job wrapper with
``shlex.quote``-d paths. ``describe`` prints both as one bash command: exactly what
``sbatch`` receives, and what the golden tests read back through a real bash.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence

from fcgtainer.backends.base import Backend
from fcgtainer.errors import CommandError, SubmitError
from fcgtainer.plan.tasks import Plan, StepPlan
from fcgtainer.states import State, TaskStatus

SUBMIT_TIMEOUT_S = 120.0
QUERY_TIMEOUT_S = 60.0
SCRIPT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# https://slurm.schedmd.com/squeue.html#SECTION_JOB-STATE-CODES (sacct uses the same names).
# COMPLETED is absent on purpose: only the wrapper's exit-code marker says a task succeeded.
SLURM_STATES: dict[str, tuple[State, str]] = {
    "PENDING": (State.PENDING, ""),
    "CONFIGURING": (State.PENDING, "node configuring"),
    "RUNNING": (State.RUNNING, ""),
    "COMPLETING": (State.RUNNING, "completing"),
    "SIGNALING": (State.RUNNING, "signaling"),
    "STAGE_OUT": (State.RUNNING, "staging out"),
    "RESIZING": (State.RUNNING, "resizing"),
    "SUSPENDED": (State.HELD, "suspended"),
    "STOPPED": (State.HELD, "stopped"),
    "REQUEUE_HOLD": (State.HELD, "requeued and held"),
    "SPECIAL_EXIT": (State.HELD, "special exit, held"),
    "REQUEUED": (State.REQUEUED, "requeued"),
    "REQUEUE_FED": (State.REQUEUED, "requeued"),
    "PREEMPTED": (State.REQUEUED, "preempted"),
    "CANCELLED": (State.CANCELLED, "cancelled"),
    "REVOKED": (State.CANCELLED, "revoked by the federation"),
    "FAILED": (State.FAILED, "failed"),
    "TIMEOUT": (State.FAILED, "walltime exceeded"),
    "OUT_OF_MEMORY": (State.FAILED, "out of memory"),
    "NODE_FAIL": (State.FAILED, "node failure"),
    "BOOT_FAIL": (State.FAILED, "node boot failure"),
    "DEADLINE": (State.FAILED, "deadline reached"),
}
_ID = re.compile(r"^\d+(_\d+)?$")
_ARRAY_ID = re.compile(r"^(\d+)_\[([0-9,\-]+)(%\d+)?\]$")


def array_spec(indices: Iterable[int]) -> str:
    """Indices as a compact ``--array`` list: ``0-3,7,9-10``."""
    out: list[str] = []
    ordered = sorted(set(indices))
    start = prev = ordered[0]
    for i in [*ordered[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ",".join(out)


def _walltime(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    days, rest = divmod(minutes, 1440)
    text = f"{rest // 60:02d}:{rest % 60:02d}:00"
    return f"{days}-{text}" if days else text


def _pattern(path: str) -> str:
    """A path for ``--output``: a literal ``%`` is ``%%`` in SLURM file patterns."""
    return path.replace("%", "%%")


def signal_margin(plan: Plan) -> int | None:
    """Seconds before the time limit at which the wrapper gets SIGUSR2, if it checkpoints."""
    if not plan.job.checkpoint.enabled:
        return None
    return max(plan.job.checkpoint.signal_margin, plan.site.slurm.signal_margin)


def sbatch_options(
    plan: Plan, indices: Sequence[int] | None = None, dependency: str | None = None
) -> list[str]:
    """The ``sbatch`` options of a run (or of some of its tasks), one argv element each.

    For a campaign step (``plan.step``) the array indices are the step's own (0..n-1, so
    that ``aftercorr`` pairs task i with task i), its scheduler output goes under
    ``steps/<step>/`` and ``dependency`` is its ``--dependency``.
    """
    opts = plan.site.slurm
    chosen = list(indices) if indices is not None else [t.index for t in plan.tasks]
    array = array_spec(i - plan.offset for i in chosen)
    if opts.array_limit:
        array += f"%{opts.array_limit}"
    res = plan.resources
    values: dict[str, str | None] = {
        "--account": opts.account,
        "--array": array,
        "--chdir": str(plan.run_dir),
        "--comment": f"fcgtainer run {plan.run_id}",
        "--constraint": opts.constraint,
        "--cpus-per-task": str(res.cpus),
        "--export": "NIL",
        "--job-name": plan.name,
        "--mem": f"{res.memory}M",
        "--open-mode": "append",
        "--output": output_pattern(plan),
        "--partition": opts.partition,
        "--qos": opts.qos,
        "--time": _walltime(res.walltime),
    }
    if res.gpus > 0:
        if opts.gpu_request == "gpus":
            values["--gpus"] = str(res.gpus)
        else:
            values["--gres"] = f"{opts.gres_name}:{res.gpus}"
    margin = signal_margin(plan)
    if margin is not None:
        values["--signal"] = f"B:USR2@{margin}"
    if dependency:
        # SLURM never runs a task whose dependency can no longer be met: drop it at once
        # (status shows it as "upstream failed"; resubmit submits it again with new ones)
        values["--dependency"] = dependency
        values["--kill-on-invalid-dep"] = "yes"
    argv = [f"{key}={value}" for key, value in sorted(values.items()) if value is not None]
    return ["--parsable", *argv, "--requeue", *opts.extra_flags]


def output_pattern(plan: Plan) -> str:
    """Where SLURM writes a task's own output (``%a`` is the array index)."""
    if plan.step:
        return _pattern(f"{plan.run_dir}/steps/{plan.step}/") + "%a.out"
    return _pattern(f"{plan.run_dir}/tasks/") + "%a/scheduler.out"


def waits_for(step: StepPlan, index: int, arrays: Mapping[int, str]) -> tuple[tuple[str, str], ...]:
    """What a campaign task waits for among the arrays submitted with it (task -> job id).

    ``per_task``: ``aftercorr`` on the array holding its own upstream task; ``all``:
    ``afterany`` on every array of that step. Upstream tasks not submitted now have
    finished already: the wrapper checks their markers.
    """
    waits: list[tuple[str, str]] = []
    for name, how in step.needs.items():
        upstream = step.plan.upstream.get(index, {}).get(name, ())
        jobs = sorted({arrays[j] for j in upstream if j in arrays}, key=int)
        kind = "aftercorr" if how == "per_task" else "afterany"
        waits += [(kind, job) for job in jobs]
    return tuple(waits)


def dependency(plan: Plan, step: StepPlan, jobs: Mapping[str, str]) -> str | None:
    """``aftercorr:ID`` (per_task) / ``afterany:ID`` (all) on the arrays submitted with it.

    ``jobs`` maps the steps submitted in the same go to their job ids; a needed step not in
    it has finished already (its markers are checked by the wrapper).
    """
    kinds = {"per_task": "aftercorr", "all": "afterany"}
    parts = [f"{kinds[how]}:{jobs[name]}" for name, how in step.needs.items() if name in jobs]
    return ",".join(parts) or None


def render_sbatch(plan: Plan) -> str:
    """The batch script (sent on ``sbatch``'s standard input): it only starts the wrapper."""
    run_dir = shlex.quote(str(plan.run_dir))
    lines = [
        "#!/bin/bash",
        f"# fcgtainer run {plan.run_id}: one array task per fcgtainer task",
        "# --export=NIL: nothing of the submitter's environment but SLURM_*",
        f"export PATH={SCRIPT_PATH}",
    ]
    modules = plan.site.apptainer.modules if plan.runtime == "apptainer" else ()
    if modules:
        lines += [
            "if [ -f /etc/profile ]; then . /etc/profile; fi",
            "module load " + " ".join(shlex.quote(m) for m in modules),
        ]
    task = '"$SLURM_ARRAY_TASK_ID"'
    if plan.offset:
        task = f'"$((SLURM_ARRAY_TASK_ID + {plan.offset}))"'
    lines.append(f"exec /bin/bash {run_dir}/wrapper.sh {run_dir} {task}")
    return "\n".join(lines) + "\n"


def describe_sbatch(plan: Plan) -> str:
    """One bash command that is exactly the submission: options plus script on stdin.

    A campaign is one such command per step; ``$JOB_<step>`` stands for the job id the
    ``sbatch`` of an earlier step printed.
    """
    out = []
    jobs: dict[str, str] = {}
    for step in plan.step_plans():
        sub = step.plan
        script = render_sbatch(sub)
        eof = "FCGTAINER_EOF"
        while eof in script:
            eof += "_"
        needs = dependency(plan, step, jobs)
        argv = shlex.join([plan.site.slurm.sbatch, *sbatch_options(sub, None, needs)])
        if needs:  # let the shell expand $JOB_<step> (the only unquoted value)
            argv = argv.replace(shlex.quote(f"--dependency={needs}"), f'"--dependency={needs}"')
        if plan.steps:
            variable = "JOB_" + step.name.replace("-", "_").replace(".", "_")
            out.append(f"{variable}=$({argv} <<'{eof}'\n{script}{eof}\n)\n")
            jobs[step.name] = "${" + variable + "%%;*}"  # --parsable: ID or ID;CLUSTER
        else:
            out.append(f"{argv} <<'{eof}'\n{script}{eof}\n")
    return "".join(out)


def parse_sbatch(stdout: str) -> str:
    """The job id ``sbatch --parsable`` printed (``id`` or ``id;cluster``), validated."""
    text = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    job_id = text.split(";", 1)[0].strip()
    if not job_id.isdigit():
        raise SubmitError(
            f"sbatch printed {stdout.strip()!r}, not a job id", "check the sbatch output above"
        )
    return job_id


def _expand(job_id: str) -> list[str]:
    """``123_[0-2,5%2]`` (a pending array line) into ``123_0 123_1 123_2 123_5``."""
    match = _ARRAY_ID.match(job_id)
    if not match:
        return [job_id]
    out = []
    for part in match.group(2).split(","):
        first, _, last = part.partition("-")
        out += [f"{match.group(1)}_{i}" for i in range(int(first), int(last or first) + 1)]
    return out


def _status(state: str, reason: str = "", exit_code: str = "") -> TaskStatus | None:
    """Our status for a native state; None for COMPLETED (the marker decides)."""
    word = state.split()[0].rstrip("+") if state.strip() else ""
    if word not in SLURM_STATES:
        return None
    ours, why = SLURM_STATES[word]
    if ours is State.PENDING and reason.startswith("JobHeld"):
        return TaskStatus(State.HELD, reason=reason)
    code: int | None = None
    if exit_code and ours is State.FAILED:
        status, _, sig = exit_code.partition(":")
        if sig.isdigit() and int(sig):
            code, why = 128 + int(sig), f"{why}, signal {sig}"
        elif status.isdigit():
            code = int(status)
            why = f"{why}, exit code {code}" if word == "FAILED" else why
    if ours is State.PENDING and reason and reason != "None":
        why = reason
    return TaskStatus(ours, code, why)


def parse_squeue(stdout: str) -> dict[str, TaskStatus]:
    """Parse ``squeue --array --format=%i|%T|%r`` lines into statuses by task id."""
    out: dict[str, TaskStatus] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 2 or not fields[0]:
            continue
        status = _status(fields[1], fields[2] if len(fields) > 2 else "")
        for job_id in _expand(fields[0]):
            if status is not None:
                out[job_id] = status
    return out


def parse_sacct(stdout: str) -> dict[str, TaskStatus]:
    """Parse ``sacct -X --parsable2 --format=JobID,State,ExitCode,Reason`` lines."""
    out: dict[str, TaskStatus] = {}
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not fields[0]:
            continue
        reason = fields[3] if len(fields) > 3 else ""
        status = _status(fields[1], reason, fields[2])
        for job_id in _expand(fields[0]):
            if status is not None:
                out[job_id] = status
    return out


def _names(stdout: str) -> list[str]:
    """Every task id in the first column of squeue/sacct lines."""
    ids: list[str] = []
    for line in stdout.splitlines():
        first = line.strip().split("|")[0]
        if first:
            ids += [i for i in _expand(first) if _ID.match(i)]
    return ids


class SlurmBackend(Backend):
    """SLURM through its command line: sbatch, squeue, sacct, scancel."""

    name = "slurm"
    accounting: bool | None = None  # learnt from the first sacct call

    def describe(self, plan: Plan) -> str:
        """What ``submit`` would run, as one bash command (for ``--dry-run``)."""
        return describe_sbatch(plan)

    def submit(self, plan: Plan, indices: Sequence[int] | None = None) -> dict[int, str]:
        """One ``sbatch --array`` per step for the chosen tasks; ``JOBID_INDEX`` per task.

        A campaign's steps go in order, each with a ``--dependency`` on the arrays of the
        steps it needs that are submitted in the same go. ``aftercorr`` pairs array indices,
        so a step whose tasks wait on different arrays (some upstream tasks go again, some
        are done) is split into one array per set of dependencies: usually one.
        """
        chosen = set(indices) if indices is not None else {t.index for t in plan.tasks}
        out: dict[int, str] = {}
        arrays: dict[int, str] = {}  # task -> the job id of the array it went in
        for step in plan.step_plans():
            groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
            for index in (i for i in step.indices if i in chosen):
                groups.setdefault(waits_for(step, index, arrays), []).append(index)
            sub = step.plan
            for waits, members in groups.items():
                needs = ",".join(f"{kind}:{job}" for kind, job in waits) or None
                argv = [self.site.slurm.sbatch, *sbatch_options(sub, members, needs)]
                done = self._run(argv, timeout=SUBMIT_TIMEOUT_S, stdin=render_sbatch(sub))
                job_id = parse_sbatch(done.stdout)
                for i in members:
                    arrays[i] = job_id
                    out[i] = f"{job_id}_{i - sub.offset}"
        return out

    def find(self, plan: Plan) -> dict[int, str]:
        """Tasks already queued (or recorded) under this run's name: the newest job wins."""
        if plan.steps:
            merged: dict[int, str] = {}
            for step in plan.steps:  # a campaign's arrays are named per step
                local = self.find(step.plan)
                merged.update({step.plan.offset + i: v for i, v in local.items()})
            return merged
        opts = self.site.slurm
        done = self._run(
            [
                opts.squeue,
                "--noheader",
                "--array",
                "--states=all",
                "--me",
                f"--name={plan.name}",
                "--format=%i|%T|%r",
            ],
            timeout=QUERY_TIMEOUT_S,
        )
        ids = _names(done.stdout)
        if not ids and self._accounting():
            acct = self._run(
                [
                    opts.sacct,
                    "--noheader",
                    "--parsable2",
                    "--allocations",
                    "--starttime=now-14days",
                    f"--name={plan.name}",
                    "--format=JobID,State",
                ],
                timeout=QUERY_TIMEOUT_S,
                check=False,
            )
            ids = _names(acct.stdout) if acct.returncode == 0 else []
        found: dict[int, str] = {}
        for task_id in ids:
            if "_" not in task_id:
                continue
            job, index = (int(x) for x in task_id.split("_"))
            if index not in found or int(found[index].split("_")[0]) < job:
                found[index] = task_id
        return found

    def status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        """``squeue`` for every id at once; ``sacct`` only for ids squeue no longer shows."""
        if not ids:
            return {}
        jobs = ",".join(sorted({i.split("_")[0] for i in ids}, key=int))
        done = self._run(
            [
                self.site.slurm.squeue,
                "--noheader",
                "--array",
                "--states=all",
                f"--jobs={jobs}",
                "--format=%i|%T|%r",
            ],
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0 and "Invalid job id" not in done.stderr:
            raise CommandError(done.argv, done.returncode, done.stdout, done.stderr)
        seen = parse_squeue(done.stdout) if done.returncode == 0 else {}
        listed = set(_names(done.stdout)) if done.returncode == 0 else set()
        out = {i: seen[i] for i in ids if i in seen}
        gone = [i for i in ids if i not in listed]
        if gone and self._accounting():
            out.update({i: s for i, s in self._sacct(gone).items() if i in set(gone)})
        return out

    def _sacct(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        jobs = ",".join(sorted({i.split("_")[0] for i in ids}, key=int))
        done = self._run(
            [
                self.site.slurm.sacct,
                "--noheader",
                "--parsable2",
                "--allocations",
                f"--jobs={jobs}",
                "--format=JobID,State,ExitCode,Reason",
            ],
            timeout=QUERY_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            if "accounting storage is disabled" in done.stderr:
                self.accounting = False
                return {}
            raise CommandError(done.argv, done.returncode, done.stdout, done.stderr)
        self.accounting = True
        return parse_sacct(done.stdout)

    def _accounting(self) -> bool:
        """Whether sacct can answer; unknown counts as yes until sacct says otherwise."""
        return self.accounting is not False

    def cancel(self, ids: Sequence[str]) -> None:
        """One ``scancel`` for every id (finished ones are ignored)."""
        if ids:
            self._run([self.site.slurm.scancel, *ids], timeout=QUERY_TIMEOUT_S, check=False)
