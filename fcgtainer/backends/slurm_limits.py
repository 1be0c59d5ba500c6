"""SLURM's size limits and the arrays a run's tasks become. Pure, but for the ``query_*``.

SLURM refuses an array whose indices reach ``MaxArraySize`` (default 1001: indices
0..1000) and any job beyond ``MaxJobCount`` (default 10,000 in the controller, every array
task counts) or beyond the QOS/association ``MaxSubmitJobs`` (pending + running, per user).
https://slurm.schedmd.com/slurm.conf.html#OPT_MaxArraySize
https://slurm.schedmd.com/resource_limits.html

So a step of ``n`` tasks goes as ``ceil(n / MaxArraySize)`` arrays. Chunk ``k`` holds the
step's local tasks ``k*size .. (k+1)*size - 1`` as array indices ``0 .. size-1`` and starts
the wrapper with the task index ``SLURM_ARRAY_TASK_ID + offset`` (the run-wide index of its
first task). The boundaries depend only on the step's local index and ``size``: two
``per_task`` steps are split at the same boundaries, so ``aftercorr`` still pairs task i
with task i, whichever subset of them is submitted.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fcgtainer import proc
from fcgtainer.config.site import Site
from fcgtainer.errors import CommandError
from fcgtainer.plan.tasks import Plan, StepPlan, in_bundles

LIMITS_TIMEOUT_S = 60.0
DEFAULT_MAX_ARRAY_SIZE = 1001  # slurm.conf's defaults, used when scontrol cannot be asked
DEFAULT_MAX_JOB_COUNT = 10_000
_CONFIG_LINE = re.compile(r"^\s*([A-Za-z][\w\[\]]*)\s*=\s*(.*?)\s*$")
# what counts against MaxSubmitJobs: jobs not finished yet (squeue's state names)
_SUBMITTED = frozenset(
    {"PENDING", "RUNNING", "SUSPENDED", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING"}
)


@dataclass(frozen=True)
class Limits:
    """The limits that bind a submission, and where each came from (for ``doctor``)."""

    max_array_size: int = DEFAULT_MAX_ARRAY_SIZE
    max_job_count: int = DEFAULT_MAX_JOB_COUNT
    max_submit_jobs: int | None = None
    sources: Mapping[str, str] | None = None

    @property
    def array_size(self) -> int:
        """Tasks per array: indices 0 .. MaxArraySize-1."""
        return self.max_array_size


@dataclass(frozen=True)
class Usage:
    """What the controller holds now: every job, and this user's unfinished ones."""

    jobs: int = 0
    mine: int = 0


@dataclass(frozen=True)
class Chunk:
    """One ``sbatch --array`` of a step: local tasks ``start..`` as array indices ``0..``."""

    start: int  # the step-local index of array index 0
    indices: tuple[int, ...]  # step-local task indices, ascending


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config`` as ``{key: value}`` (``Key = value`` lines; others ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        match = _CONFIG_LINE.match(line)
        if match:
            out[match.group(1)] = match.group(2)
    return out


def _int(value: str | None) -> int | None:
    """A limit as a number; empty, ``(null)``, ``UNLIMITED`` or negative are no limit."""
    if value is None:
        return None
    head = value.split()[0] if value.split() else ""
    return int(head) if head.isdigit() and int(head) > 0 else None


def config_limits(config: Mapping[str, str]) -> tuple[int | None, int | None]:
    """``MaxArraySize`` and ``MaxJobCount`` from a parsed ``scontrol show config``."""
    return _int(config.get("MaxArraySize")), _int(config.get("MaxJobCount"))


def has_accounting(config: Mapping[str, str]) -> bool:
    """True when the controller stores accounting in slurmdbd (so sacctmgr can answer)."""
    return config.get("AccountingStorageType", "").endswith("/slurmdbd")


def parse_assoc(stdout: str) -> tuple[int | None, str]:
    """``sacctmgr -nP show assoc ... format=MaxSubmit,DefaultQOS``: the lowest limit, the QOS."""
    limits: list[int] = []
    qos = ""
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if not fields or not line.strip():
            continue
        value = _int(fields[0])
        if value is not None:
            limits.append(value)
        if len(fields) > 1 and fields[1] and not qos:
            qos = fields[1]
    return (min(limits) if limits else None), qos


def parse_qos(stdout: str, name: str) -> int | None:
    """``sacctmgr -nP show qos format=Name,MaxSubmitPU,MaxSubmitPA``: the QOS ``name``'s limit."""
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if fields[0] == name:
            values = [v for v in (_int(f) for f in fields[1:]) if v is not None]
            return min(values) if values else None
    return None


def parse_usage(stdout: str, user: str) -> Usage:
    """``squeue --array --states=all --format=%u|%T``: jobs in the controller, user's unfinished."""
    jobs = mine = 0
    for line in stdout.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 2:
            continue
        jobs += 1
        if fields[0] == user and fields[1] in _SUBMITTED:
            mine += 1
    return Usage(jobs, mine)


def merge_limits(
    site: Site,
    found_array: int | None,
    found_jobs: int | None,
    found_submit: int | None,
) -> Limits:
    """The limits in force: what SLURM says, lowered by the site profile's ``slurm.limits``."""
    mine = site.slurm.limits
    sources: dict[str, str] = {}

    def pick(key: str, found: int | None, profile: int | None, default: int | None) -> int | None:
        if profile is not None and (found is None or profile < found):
            sources[key] = "site profile"
            return profile
        if found is not None:
            sources[key] = "scheduler"
            return found
        sources[key] = "SLURM's default: not read" if default is not None else "none found"
        return default

    array = pick("max_array_size", found_array, mine.max_array_size, DEFAULT_MAX_ARRAY_SIZE)
    jobs = pick("max_job_count", found_jobs, mine.max_job_count, DEFAULT_MAX_JOB_COUNT)
    submit = pick("max_submit_jobs", found_submit, mine.max_submit_jobs, None)
    return Limits(array or DEFAULT_MAX_ARRAY_SIZE, jobs or DEFAULT_MAX_JOB_COUNT, submit, sources)


Runner = Callable[..., proc.Completed]


def query_limits(site: Site, run: Runner = proc.run) -> Limits:
    """Ask SLURM: one ``scontrol show config``; ``sacctmgr`` only when accounting exists.

    A missing or failing ``sacctmgr`` (no slurmdbd, no association) means no submit limit,
    never an error; a failing ``scontrol`` leaves SLURM's defaults (lowered by the profile).
    """
    opts = site.slurm
    config = parse_config(_quiet(run, [opts.scontrol, "show", "config"]))
    array, jobs = config_limits(config)
    submit: int | None = None
    if has_accounting(config):
        user = getpass.getuser()
        assoc = _quiet(run, [opts.sacctmgr, "-nP", "show", "assoc", "where", f"user={user}",
                             "format=MaxSubmit,DefaultQOS"])  # fmt: skip
        submit, default_qos = parse_assoc(assoc)
        qos_name = opts.qos or default_qos or "normal"
        qos = _quiet(run, [opts.sacctmgr, "-nP", "show", "qos", "where", f"name={qos_name}",
                           "format=Name,MaxSubmitPU,MaxSubmitPA"])  # fmt: skip
        per_qos = parse_qos(qos, qos_name)
        if per_qos is not None:
            submit = per_qos if submit is None else min(submit, per_qos)
    return merge_limits(site, array, jobs, submit)


def _quiet(run: Runner, argv: list[str]) -> str:
    """stdout of a command whose failure only means 'no such limit here'."""
    try:
        done = run(argv, timeout=LIMITS_TIMEOUT_S, check=False)
    except CommandError:  # not installed here (doctor off the login node), or timed out
        return ""
    return done.stdout if done.returncode == 0 else ""


def query_usage(site: Site, run: Runner = proc.run) -> Usage:
    """One ``squeue`` of every job the controller holds (each array task is a line)."""
    argv = [site.slurm.squeue, "--noheader", "--array", "--states=all", "--format=%u|%T"]
    done = run(argv, timeout=LIMITS_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise CommandError(done.argv, done.returncode, done.stdout, done.stderr)
    return parse_usage(done.stdout, getpass.getuser())


def room(limits: Limits, usage: Usage) -> int:
    """How many more tasks SLURM accepts now: MaxJobCount and MaxSubmitJobs minus the queue.

    slurmctld refuses a job when ``job_count + tasks >= MaxJobCount`` (``_add_job_record``
    in ``job_mgr.c``, an array counting its tasks): one less than MaxJobCount fits.
    """
    free = limits.max_job_count - 1 - usage.jobs
    if limits.max_submit_jobs is not None:
        free = min(free, limits.max_submit_jobs - usage.mine)
    return max(0, free)


def chunks(local: Iterable[int], size: int) -> list[Chunk]:
    """Step-local task indices as arrays of at most ``size`` indices (``0 .. size-1``).

    Chunk boundaries are multiples of ``size`` of the local index, whatever subset is given.
    """
    if size < 1:
        raise ValueError(f"array size {size} < 1")
    out: dict[int, list[int]] = {}
    for i in sorted(set(local)):
        out.setdefault(i // size, []).append(i)
    return [Chunk(k * size, tuple(v)) for k, v in sorted(out.items())]


def fit(
    ordered: Sequence[int], free: int, bundled: Mapping[int, tuple[str, int]] | None = None
) -> tuple[list[int], list[int]]:
    """The first tasks that ``free`` jobs hold go now, the rest waits for room (order kept).

    ``bundled``: the step and bundle size of each task of a bundled step (``bundle: N``):
    N of its tasks take one job, as :func:`plan_arrays` bundles them (in run order).
    """
    if not bundled:
        return list(ordered[:free]), list(ordered[free:])
    jobs = taken = held = 0  # held: tasks in the current job
    step = None
    for task in ordered:
        name, size = bundled.get(task, ("", 1))
        if held == 0 or held >= size or name != step:
            if jobs == free:
                break
            jobs, held, step = jobs + 1, 0, name
        held += 1
        taken += 1
    return list(ordered[:taken]), list(ordered[taken:])


@dataclass(frozen=True)
class Split:
    """What a submission of ``total`` tasks becomes under ``limits`` with ``free`` room."""

    arrays: tuple[tuple[int, int], ...]  # (first task, last task) of each array
    now: int
    waiting: int


def split_tasks(total: int, limits: Limits, free: int) -> Split:
    """A one-step run of ``total`` tasks: its arrays, and how many go now or wait for room."""
    arrays = tuple((c.indices[0], c.indices[-1]) for c in chunks(range(total), limits.array_size))
    now = min(total, free)
    return Split(arrays, now, total - now)


def report(limits: Limits, usage: Usage | None, total: int) -> list[tuple[str, str]]:
    """``doctor``'s lines: each limit with its source, and the split of ``total`` tasks."""
    src = dict(limits.sources or {})
    submit = f"{limits.max_submit_jobs:,}" if limits.max_submit_jobs is not None else "none"
    lines = [
        ("MaxArraySize", f"{limits.max_array_size:,} ({src.get('max_array_size', '?')})"),
        ("MaxJobCount", f"{limits.max_job_count:,} ({src.get('max_job_count', '?')})"),
        ("MaxSubmitJobs", f"{submit} ({src.get('max_submit_jobs', '?')})"),
    ]
    free = room(limits, usage or Usage())
    split = split_tasks(total, limits, free)
    first, last = split.arrays[0], split.arrays[-1]
    shape = f"tasks {first[0]}-{first[1]}" + (
        f" ... {last[0]}-{last[1]}" if len(split.arrays) > 1 else ""
    )
    lines.append(
        (
            f"{total:,} tasks",
            f"{len(split.arrays)} array(s) of up to {limits.array_size:,} ({shape})",
        )
    )
    queue = f"{usage.jobs:,} jobs queued, {usage.mine:,} yours" if usage else "queue not read"
    if split.waiting:
        lines.append(
            (
                "room now",
                f"{free:,} ({queue}): {split.now:,} go at submit, {split.waiting:,} wait for "
                "`fcgtainer resubmit --waiting RUN` (or bundle tasks to need fewer jobs)",
            )
        )
    else:
        lines.append(("room now", f"{free:,} ({queue}): all {total:,} go at submit"))
    return lines


Placed = Mapping[int, tuple[str, int]]  # task -> (job: an id or "#k", its array index)


def waits_for(
    step: StepPlan, index: int, placed: Placed, array_index: int
) -> tuple[tuple[str, str], ...]:
    """What a campaign task waits for among the arrays queued (task -> job, array index).

    ``per_task``: ``aftercorr`` on the array holding its own upstream task when that task
    has the same array index (SLURM pairs equal indices: always so when both steps are split
    with the same array size); otherwise (arrays split with another ``MaxArraySize``)
    ``afterany`` on that whole array, and the wrapper's marker check decides. ``all``:
    ``afterany`` on every array of that step. Upstream tasks not queued have finished
    already: the wrapper checks their markers.
    """
    waits: set[tuple[str, str]] = set()
    for name, how in step.needs.items():
        for j in step.plan.upstream.get(index, {}).get(name, ()):
            if j not in placed:
                continue
            job, upstream_index = placed[j]
            paired = how == "per_task" and upstream_index == array_index
            waits.add(("aftercorr" if paired else "afterany", job))
    return tuple(sorted(waits, key=lambda w: (_order(w[1]), w[0])))


def _order(job: str) -> tuple[int, int]:
    """Queued ids first, then this submission's arrays in the order they go."""
    return (1, int(job[1:])) if job.startswith("#") else (0, int(job))


@dataclass(frozen=True)
class Array:
    """One ``sbatch``: tasks of one step and chunk with the same dependencies.

    ``waits`` names jobs queued before (ids) or arrays of the same submission (``#k``, the
    k-th of the list).
    """

    step: StepPlan
    start: int
    members: tuple[int, ...]  # one task per array index: a bundle's first task (its leader)
    waits: tuple[tuple[str, str], ...]
    # a bundled step (``bundle: N``): each leader's tasks, itself first (empty otherwise)
    bundles: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def array_index(self, index: int) -> int:
        """The SLURM array index of run-wide task ``index`` (a leader, if bundled)."""
        return index - self.step.plan.offset - self.start

    def tasks_of(self, leader: int) -> tuple[int, ...]:
        """The run-wide tasks array index ``leader`` runs: its bundle, or itself."""
        return self.bundles.get(leader, (leader,))


def plan_arrays(
    plan: Plan,
    chosen: Iterable[int],
    size: int = DEFAULT_MAX_ARRAY_SIZE,
    queued: Mapping[int, str] | None = None,
) -> list[Array]:
    """The arrays that submit ``chosen`` (pure): per step, per chunk of ``size``, per needs.

    ``queued`` maps tasks still in the queue (``JOB_INDEX``) to chain on: a campaign step
    fed later waits for the upstream tasks that were submitted earlier.
    """
    wanted = set(chosen)
    placed: dict[int, tuple[str, int]] = {}
    for task, job_id in (queued or {}).items():
        job, _, idx = job_id.partition("_")
        if job.isdigit() and idx.isdigit():
            placed[task] = (job, int(idx))
    out: list[Array] = []
    for step in plan.step_plans():
        sub = step.plan
        local = sorted(i - sub.offset for i in step.indices if i in wanted)
        # a bundled step: N chosen tasks a job, the first of them its array index
        bundle = in_bundles(local, sub.bundle)
        for chunk in chunks(bundle, size):
            groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
            for i in chunk.indices:
                found = {
                    w
                    for m in bundle[i]
                    for w in waits_for(step, sub.offset + m, placed, i - chunk.start)
                }
                waits = tuple(sorted(found, key=lambda w: (_order(w[1]), w[0])))
                groups.setdefault(waits, []).append(i)
            for waits, leaders in groups.items():
                key = f"#{len(out)}"
                for i in leaders:
                    for m in bundle[i]:
                        placed[sub.offset + m] = (key, i - chunk.start)
                tasks = {sub.offset + i: tuple(sub.offset + m for m in bundle[i]) for i in leaders}
                out.append(
                    Array(
                        step,
                        chunk.start,
                        tuple(sub.offset + i for i in leaders),
                        waits,
                        tasks if sub.bundle > 1 else {},
                    )
                )
    return out


def dependency(waits: Iterable[tuple[str, str]], jobs: Mapping[str, str]) -> str | None:
    """``aftercorr:ID,afterany:ID`` with ``#k`` replaced by what ``jobs`` says it is."""
    return ",".join(f"{kind}:{jobs.get(job, job)}" for kind, job in waits) or None
