"""The SLURM backend: ``sbatch --array`` per step and chunk, ``squeue`` then ``sacct`` for status.

A step larger than ``MaxArraySize`` goes as several arrays (:mod:`slurm_limits`), each
starting the wrapper with its chunk's task offset; what does not fit under ``MaxJobCount``
or ``MaxSubmitJobs`` now waits in the journal and is fed by ``fcgtainer resubmit --waiting``.

Options reach ``sbatch`` as argv elements (never parsed by a shell or by ``#SBATCH``
comments); the batch script goes on standard input and only starts the job wrapper with
``shlex.quote``-d paths. ``describe`` prints both as one bash command: exactly what
``sbatch`` receives, and what the golden tests read back through a real bash.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence

from fcgtainer import tasktable
from fcgtainer.backends.base import Backend, append_bundles
from fcgtainer.backends.slurm_limits import (
    DEFAULT_MAX_ARRAY_SIZE,
    Limits,
    dependency,
    fit,
    plan_arrays,
    query_limits,
    query_usage,
    room,
)
from fcgtainer.errors import CommandError, SubmitError
from fcgtainer.plan.tasks import Plan
from fcgtainer.proc import CommandTimeout
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
    plan: Plan,
    indices: Sequence[int] | None = None,
    dependency: str | None = None,
    start: int = 0,
) -> list[str]:
    """The ``sbatch`` options of a run (or of some of its tasks), one argv element each.

    For a campaign step (``plan.step``) the array indices are the step's own (0..n-1, so
    that ``aftercorr`` pairs task i with task i), its scheduler output goes under
    ``steps/<step>/`` and ``dependency`` is its ``--dependency``. ``start`` is the chunk's
    first step-local task (:func:`slurm_limits.chunks`): array index ``a`` is local task
    ``start + a``, and the job name says so (``NAME+START``) for ``find``.
    """
    opts = plan.site.slurm
    chosen = list(indices) if indices is not None else [t.index for t in plan.tasks]
    array = array_spec(i - plan.offset - start for i in chosen)
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
        "--job-name": chunk_name(plan, start),
        "--mem": f"{res.memory}M",
        "--open-mode": "append",
        "--output": output_pattern(plan, start),
        "--partition": opts.partition,
        "--qos": opts.qos,
        "--time": _walltime(res.walltime * plan.bundle),  # a bundle's tasks run in turn
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


def chunk_name(plan: Plan, start: int) -> str:
    """The name of the array whose index 0 is local task ``start``: ``NAME`` or ``NAME+START``."""
    return plan.name if start == 0 else f"{plan.name}+{start}"


def output_pattern(plan: Plan, start: int = 0) -> str:
    """Where SLURM writes a task's own output (``%a`` is the array index, task ``start + %a``)."""
    prefix = f"{start}+" if start else ""
    if plan.step:
        return _pattern(f"{plan.run_dir}/steps/{plan.step}/{prefix}") + "%a.out"
    # tasks/<i>/ is made by the task itself, and SLURM cannot add START to %a
    return _pattern(f"{plan.run_dir}/scheduler/{prefix}") + "%a.out"


def render_sbatch(plan: Plan, start: int = 0) -> str:
    """The batch script (sent on ``sbatch``'s standard input): it only starts the wrapper.

    The task index is the array index plus the chunk's first run-wide task (step offset and
    ``start``), computed by bash from ``SLURM_ARRAY_TASK_ID`` and a rendered literal.
    """
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
    if plan.offset + start:
        task = f'"$((SLURM_ARRAY_TASK_ID + {plan.offset + start}))"'
    if plan.bundle > 1:  # the index is the bundle's first task; RUN_DIR/bundles.txt the rest
        lines[1] = f"# fcgtainer run {plan.run_id}: one array task per bundle of tasks"
        lines.append(f"exec /bin/bash {run_dir}/node/bundle.sh {run_dir} {task}")
    else:
        lines.append(f"exec /bin/bash {run_dir}/wrapper.sh {run_dir} {task}")
    return "\n".join(lines) + "\n"


def report_job(plan: Plan, python: str, after: Sequence[str]) -> tuple[list[str], str]:
    """The ``sbatch`` argv and script of a campaign's report job (``node/report.sh``).

    It waits ``afterany`` on ``after`` (the run's array job ids) and so runs once every
    task has ended, however it ended; its output is ``scheduler/report.out``.
    """
    opts = plan.site.slurm
    values: dict[str, str | None] = {
        "--account": opts.account,
        "--chdir": str(plan.run_dir),
        "--comment": f"fcgtainer run {plan.run_id}: report",
        "--cpus-per-task": "1",
        "--dependency": "afterany:" + ":".join(after),
        "--export": "NIL",
        "--job-name": f"{plan.name}.report",
        "--mem": "2048M",
        "--output": _pattern(f"{plan.run_dir}/scheduler/report.out"),
        "--partition": opts.partition,
        "--qos": opts.qos,
        "--time": "00:30:00",
    }
    argv = [opts.sbatch, "--parsable"]
    argv += [f"{k}={v}" for k, v in sorted(values.items()) if v is not None]
    script = "\n".join(
        [
            "#!/bin/bash",
            f"# fcgtainer run {plan.run_id}: the campaign's report, after every task",
            f"export PATH={SCRIPT_PATH}",
            "exec /bin/bash "
            + shlex.join([f"{plan.run_dir}/node/report.sh", str(plan.run_dir), python]),
        ]
    )
    return argv, script + "\n"


def describe_sbatch(plan: Plan, size: int | None = None, python: str = sys.executable) -> str:
    """One bash command that is exactly the submission: options plus script on stdin.

    A campaign is one such command per array; ``$JOB_<step>`` (``$JOB_<step>_<k>`` for a
    step's later arrays) stands for the job id the ``sbatch`` of an earlier array printed;
    then its report job (:func:`report_job`, run by ``python``). ``size``: tasks per array
    (default: the site profile's ``slurm.limits.max_array_size``, else SLURM's default 1001).
    """
    size = size or plan.site.slurm.limits.max_array_size or DEFAULT_MAX_ARRAY_SIZE
    out = []
    jobs: dict[str, str] = {}
    seen: dict[str, int] = {}
    for k, array in enumerate(plan_arrays(plan, (t.index for t in plan.tasks), size)):
        sub = array.step.plan
        script = render_sbatch(sub, array.start)
        eof = "FCGTAINER_EOF"
        while eof in script:
            eof += "_"
        needs = dependency(array.waits, jobs)
        options = sbatch_options(sub, array.members, needs, array.start)
        argv = shlex.join([plan.site.slurm.sbatch, *options])
        if array.bundles:  # the bundles' tasks, where node/bundle.sh reads them
            lines = tasktable.bundle_lines(array.bundles).decode()
            target = shlex.quote(str(plan.run_dir / "bundles.txt"))
            out.append(f"cat >> {target} <<'FCGTAINER_EOF'\n{lines}FCGTAINER_EOF\n")
        if needs:  # let the shell expand $JOB_<step> (the only unquoted value)
            argv = argv.replace(shlex.quote(f"--dependency={needs}"), f'"--dependency={needs}"')
        if plan.steps:
            name = array.step.name
            variable = "JOB_" + name.replace("-", "_").replace(".", "_")
            if seen.get(name):
                variable += f"_{seen[name]}"
            seen[name] = seen.get(name, 0) + 1
            out.append(f"{variable}=$({argv} <<'{eof}'\n{script}{eof}\n)\n")
            jobs[f"#{k}"] = "${" + variable + "%%;*}"  # --parsable: ID or ID;CLUSTER
        else:
            out.append(f"{argv} <<'{eof}'\n{script}{eof}\n")
    if plan.steps and jobs:
        argv_list, script = report_job(plan, python, ["AFTER"])
        after = "afterany:" + ":".join(jobs.values())
        argv = shlex.join(argv_list).replace(
            "--dependency=afterany:AFTER", f'"--dependency={after}"'
        )
        out.append(f"{argv} <<'FCGTAINER_EOF'\n{script}FCGTAINER_EOF\n")
    return "".join(out)


def waiting_note(limits: Limits, free: int, total: int) -> str:
    """Why only ``free`` of ``total`` tasks went now (room for that many), naming the limits."""
    submit = (
        f", MaxSubmitJobs {limits.max_submit_jobs:,}" if limits.max_submit_jobs is not None else ""
    )
    return (
        f"SLURM had room for {free:,} of {total:,} tasks (MaxJobCount "
        f"{limits.max_job_count:,}{submit}, minus the jobs queued)"
    )


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

    _limits: Limits | None = None

    def limits(self) -> Limits:
        """The size limits in force (asked once per backend: ``scontrol``, ``sacctmgr``)."""
        if self._limits is None:
            self._limits = query_limits(self.site, self._run)
        return self._limits

    def describe(self, plan: Plan) -> str:
        """What ``submit`` would run, as one bash command (for ``--dry-run``)."""
        return describe_sbatch(plan, self.limits().array_size)

    def submit(
        self,
        plan: Plan,
        indices: Sequence[int] | None = None,
        *,
        queued: Mapping[int, str] | None = None,
    ) -> dict[int, str]:
        """The chosen tasks as arrays of at most ``MaxArraySize``; ``JOBID_INDEX`` per task.

        A campaign's steps go in order, each array with a ``--dependency`` on the arrays of
        the steps it needs, submitted in the same go or still ``queued`` (task -> id).
        ``aftercorr`` pairs array indices, so a step whose tasks wait on different arrays
        (some upstream tasks go again, some are done) is split into one array per set of
        dependencies: usually one per chunk.

        Only as many tasks as SLURM has room for now (``MaxJobCount`` and ``MaxSubmitJobs``
        minus what is queued) are submitted, in run order; the others are left out of the
        result and :attr:`note` says why: the caller keeps them waiting for
        ``fcgtainer resubmit --waiting``. So are the rest when ``sbatch`` refuses a later
        array (the queue filled meanwhile); a refused first array is an error. Neither
        ``--hold`` nor a chain of arrays that submit each other helps: held jobs count
        against both limits, and a chain needs sbatch and the run's state on the nodes.
        """
        chosen = set(indices) if indices is not None else {t.index for t in plan.tasks}
        order = [i for step in plan.step_plans() for i in step.indices if i in chosen]
        limits = self.limits()
        free = room(limits, query_usage(self.site, self._run))
        bundled = {
            i: (step.name, step.plan.bundle)
            for step in plan.step_plans()
            if step.plan.bundle > 1
            for i in step.indices
            if i in chosen
        }
        now, later = fit(order, free, bundled)
        self.note = ""
        if later:
            self.note = waiting_note(limits, len(now), len(order))
        out: dict[int, str] = {}
        jobs: dict[str, str] = {}
        for k, array in enumerate(plan_arrays(plan, now, limits.array_size, queued)):
            sub = array.step.plan
            needs = dependency(array.waits, jobs)
            argv = [self.site.slurm.sbatch, *sbatch_options(sub, array.members, needs, array.start)]
            stdin = render_sbatch(sub, array.start)
            if array.bundles:  # before sbatch: a bundle may start at once
                append_bundles(plan, array.bundles)
            try:
                done = self._run(argv, timeout=SUBMIT_TIMEOUT_S, stdin=stdin)
            except CommandTimeout:
                raise  # it may have gone through: the caller reconciles by name
            except CommandError as exc:
                if not out:
                    raise
                # refused after some arrays went (the queue filled meanwhile?): the rest waits
                why = (exc.stderr.strip().splitlines() or [f"exit code {exc.returncode}"])[-1]
                self.note = f"sbatch refused an array after {len(out):,} tasks went ({why})"
                return out
            job_id = parse_sbatch(done.stdout)
            jobs[f"#{k}"] = job_id
            for i in array.members:  # a bundle's tasks share its array task
                out.update(dict.fromkeys(array.tasks_of(i), f"{job_id}_{array.array_index(i)}"))
        if plan.steps and out and not later:
            self._submit_report(plan, [*out.values(), *(queued or {}).values()])
        return out

    def _submit_report(self, plan: Plan, task_ids: Sequence[str]) -> None:
        """The campaign's report job after every array of the run (:func:`report_job`).

        Not submitted is only a note: ``fcgtainer report RUN`` writes the same page.
        """
        arrays = sorted({task.split("_", 1)[0] for task in task_ids}, key=int)
        argv, script = report_job(plan, sys.executable, arrays)
        try:
            self._run(argv, timeout=SUBMIT_TIMEOUT_S, stdin=script)
        except CommandError as exc:
            why = (exc.stderr.strip().splitlines() or [f"exit code {exc.returncode}"])[-1]
            self.note = f"no report job ({why}): `fcgtainer report RUN` writes the report"

    def find(self, plan: Plan) -> dict[int, str]:
        """Tasks already queued (or recorded) under this run's names: the newest job wins.

        A step split in chunks has one name per chunk (``NAME``, ``NAME+START``...): one
        ``squeue`` asks for all of them; the name gives each array index its task.
        """
        size = self.limits().array_size
        merged: dict[int, str] = {}
        for step in plan.step_plans():  # a campaign's arrays are named per step
            sub = step.plan
            starts = range(0, max(1, len(sub.tasks)), size)
            names = {chunk_name(sub, s): sub.offset + s for s in starts}
            bundles = tasktable.read_bundles(plan.run_dir) if sub.bundle > 1 else {}
            for index, task_id in self._find_names(names).items():
                merged.update(dict.fromkeys(bundles.get(index, (index,)), task_id))
        return merged

    def _find_names(self, names: Mapping[str, int]) -> dict[int, str]:
        """Run-wide task -> newest ``JOB_INDEX`` among jobs named ``names`` (name -> offset)."""
        opts = self.site.slurm
        listed = ",".join(names)
        done = self._run(
            [
                opts.squeue,
                "--noheader",
                "--array",
                "--states=all",
                "--me",
                f"--name={listed}",
                "--format=%i|%T|%r|%j",
            ],
            timeout=QUERY_TIMEOUT_S,
        )
        lines = done.stdout
        if not _names(lines) and self._accounting():
            acct = self._run(
                [
                    opts.sacct,
                    "--noheader",
                    "--parsable2",
                    "--allocations",
                    "--starttime=now-14days",
                    f"--name={listed}",
                    "--format=JobID,State,JobName",
                ],
                timeout=QUERY_TIMEOUT_S,
                check=False,
            )
            lines = acct.stdout if acct.returncode == 0 else ""
        first = next(iter(names.values()))
        found: dict[int, str] = {}
        for line in lines.splitlines():
            fields = line.strip().split("|")
            offset = names.get(fields[-1], first) if len(fields) > 2 else first
            for task_id in _names(fields[0]):
                if "_" not in task_id:
                    continue
                job, array_index = (int(x) for x in task_id.split("_"))
                index = offset + array_index
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
