"""The HTCondor backend: one cluster per run with itemdata, through the htcondor2 bindings.

``htcondor2`` is imported inside the methods that talk to the pool: a SLURM-only site never
imports it. Status reads the run's job event log first (no schedd load at all), then asks the
schedd once for ids the log does not explain, then the history once for the rest.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcgtainer import tasktable
from fcgtainer.backends.base import Backend, append_bundles
from fcgtainer.errors import ConfigError, SubmitError
from fcgtainer.plan.tasks import Plan, in_bundles
from fcgtainer.proc import CommandTimeout
from fcgtainer.states import (
    EXIT_CONFIG,
    EXIT_NO_CVMFS,
    EXIT_NO_GPU,
    EXIT_REQUEUE,
    EXIT_UPSTREAM,
    EXIT_UPSTREAM_WAIT,
    State,
    TaskStatus,
)

EVENT_LOG = "events.log"
INDEX_DIR = ".htcondor"  # under the site's runs dir: <cluster>.log -> RUN_DIR/events.log

# JobStatus codes: https://htcondor.readthedocs.io/en/latest/classad-attributes/job-classad-attributes.html#JobStatus
# Completed (4) is absent on purpose: only the wrapper's exit-code marker says a task succeeded.
CONDOR_STATES: dict[int, tuple[State, str]] = {
    1: (State.PENDING, ""),  # Idle
    2: (State.RUNNING, ""),  # Running
    3: (State.CANCELLED, "removed"),  # Removed
    5: (State.HELD, "held"),  # Held (HoldReason is shown)
    6: (State.RUNNING, "transferring output"),  # Transferring Output
    7: (State.HELD, "suspended"),  # Suspended
}
# Job event log events: https://htcondor.readthedocs.io/en/latest/codes-other-values/job-event-log-codes.html
EVENT_STATES: dict[str, tuple[State, str]] = {
    "SUBMIT": (State.PENDING, ""),
    "EXECUTE": (State.RUNNING, ""),
    "JOB_EVICTED": (State.REQUEUED, "evicted"),
    "SHADOW_EXCEPTION": (State.REQUEUED, "shadow exception"),
    "JOB_RECONNECT_FAILED": (State.REQUEUED, "reconnect failed"),
    "JOB_HELD": (State.HELD, "held"),
    "JOB_RELEASED": (State.PENDING, "released"),
    "JOB_SUSPENDED": (State.HELD, "suspended"),
    "JOB_UNSUSPENDED": (State.RUNNING, ""),
    "JOB_ABORTED": (State.CANCELLED, "removed"),
    "EXECUTABLE_ERROR": (State.FAILED, "executable error"),
    "JOB_TERMINATED": (State.UNKNOWN, "terminated"),  # left out: the marker decides
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ID = re.compile(r"^(\d+)\.(\d+)$")


def _value(text: str, key: str) -> str:
    """A submit-language value: ``$`` is literal (``$(DOLLAR)``), no control characters."""
    if _CONTROL.search(text):
        raise ConfigError(f"htcondor: {key}: control characters are not allowed", "remove them")
    return text.replace("$", "$(DOLLAR)")


def classad_string(text: str, key: str) -> str:
    """A ClassAd string literal for a ``+Attribute`` (quotes and backslashes escaped)."""
    return '"' + _value(text, key).replace("\\", "\\\\").replace('"', '\\"') + '"'


def arguments(argv: Iterable[str]) -> str:
    """HTCondor's new argument syntax: each argument in single quotes, all in double quotes."""
    quoted = []
    for arg in argv:
        body = arg if arg == "$(task)" else _value(arg, "arguments")
        quoted.append("'" + body.replace("'", "''").replace('"', '""') + "'")
    return '"' + " ".join(quoted) + '"'


def retries(plan: Plan) -> int:
    """Automatic retries of a failed task: the job's wish, bounded by the site."""
    return min(plan.job.retries, plan.site.htcondor.max_retries)


def is_factory(plan: Plan, count: int) -> bool:
    """Whether a submission of ``count`` tasks goes as a late-materialisation factory."""
    above = plan.site.htcondor.factory_above
    return above is not None and count > above


def factory_commands(plan: Plan, count: int) -> dict[str, str]:
    """``max_idle`` / ``max_materialize`` when ``count`` tasks make a factory, else nothing.

    Either command turns the submission into a job factory: the schedd keeps the submit
    digest and the item data, and materialises procs (``ProcId`` = item row, in order) as
    the limits allow, so ``MAX_JOBS_PER_SUBMISSION`` no longer caps it. The queue statement
    stays ``queue task in (...)`` with the tasks as item data: htcondor2's
    ``Schedd.submit(desc, itemdata=...)`` (25.x) sees the factory commands, sends the items
    to the schedd (``SendMaterializeData``) and appends the queue statement to the digest;
    ``SubmitResult.num_procs()`` is the total to come and ``first_proc()`` is 0, so proc
    ``n`` is the ``n``-th task exactly as in a plain cluster. DAGMan's direct submission
    does the same for a node's submit file, so a campaign step needs nothing else.
    """
    if not is_factory(plan, count):
        return {}
    opts = plan.site.htcondor
    out: dict[str, str] = {}
    if opts.max_idle is not None:
        out["max_idle"] = str(opts.max_idle)
    if opts.max_materialize is not None:
        out["max_materialize"] = str(opts.max_materialize)
    return out


def render_submit(plan: Plan, count: int | None = None) -> dict[str, str]:
    """The submit description of a run; tasks come as itemdata (``$(task)``).

    ``count`` is how many jobs this submission queues (all of the plan's by default): above
    the site's ``factory_above`` the description makes a factory (:func:`factory_commands`).
    A bundled run (``bundle: N``) queues one job per bundle: ``$(task)`` is the bundle's
    first task, and ``node/bundle.sh`` runs the tasks ``RUN_DIR/bundles.txt`` gives it.
    """
    opts = plan.site.htcondor
    if opts.file_transfer:
        raise ConfigError(
            f"{plan.site.source}: htcondor.file_transfer: not supported yet",
            "use a shared filesystem for runs_dir (file_transfer: false)",
        )
    run = str(plan.run_dir)
    res = plan.resources
    # a campaign task whose upstream failed (88, 89) would end the same way again
    campaign = (EXIT_UPSTREAM, EXIT_UPSTREAM_WAIT) if plan.step else ()
    codes = (EXIT_CONFIG, EXIT_NO_GPU, EXIT_NO_CVMFS, *campaign)
    no_retry = ", ".join(str(c) for c in codes)
    entry = f"{run}/node/bundle.sh" if plan.bundle > 1 else f"{run}/wrapper.sh"
    desc: dict[str, str] = {
        "+FcgtainerRun": classad_string(plan.run_id, "+FcgtainerRun"),
        "+FcgtainerTask": "$(task)",
        "arguments": arguments([entry, run, "$(task)"]),
        "batch_name": _value(plan.name, "batch_name"),
        "checkpoint_exit_code": str(EXIT_REQUEUE),
        "environment": '"FCGTAINER_ATTEMPT=$$([NumJobStarts])"',
        "error": _value(f"{run}/scheduler/", "error") + "$(task).err",
        "executable": "/bin/bash",
        "getenv": "false",
        "initialdir": _value(run, "initialdir"),
        "log": _value(f"{run}/{EVENT_LOG}", "log"),
        "max_retries": str(retries(plan)),
        "on_exit_hold": "ExitBySignal =?= true",
        "on_exit_hold_reason": '"the job wrapper was killed by a signal"',
        "output": _value(f"{run}/scheduler/", "output") + "$(task).out",
        "periodic_release": (
            f"HoldReasonCode =!= 1 && NumJobStarts <= {retries(plan) + 1} "
            "&& time() - EnteredCurrentStatus > 60"
        ),
        "request_cpus": str(res.cpus),
        "request_memory": f"{res.memory}MB",
        "retry_until": f"member(ExitCode, {{{no_retry}}})",
        "should_transfer_files": "NO",
        "transfer_executable": "false",
        "universe": "vanilla",
    }
    if res.gpus > 0:
        desc["request_gpus"] = str(res.gpus)
    if plan.job.checkpoint.enabled:
        desc["kill_sig"] = "SIGUSR2"  # the wrapper forwards it: the payload checkpoints
    if opts.job_flavour:
        desc["+JobFlavour"] = classad_string(opts.job_flavour, "+JobFlavour")
    if opts.max_runtime:
        desc["+MaxRuntime"] = str(opts.max_runtime)
    if opts.requirements:
        desc["requirements"] = opts.requirements
    jobs = len(bundles_of(plan, [t.index for t in plan.tasks])) if count is None else count
    desc.update(factory_commands(plan, jobs))
    desc.update(opts.extra)
    return dict(sorted(desc.items()))


def itemdata(indices: Iterable[int]) -> list[dict[str, str]]:
    """One item per task: its index."""
    return [{"task": str(i)} for i in indices]


def bundles_of(plan: Plan, chosen: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """The chosen tasks in jobs of the plan's ``bundle`` size, in order: leader -> tasks."""
    return in_bundles(chosen, plan.bundle)


def describe_submit(plan: Plan) -> str:
    """The submit description as a submit file, with its queue statement."""
    lines = [f"{key} = {value}" for key, value in render_submit(plan).items()]
    bundles = bundles_of(plan, [t.index for t in plan.tasks])
    if plan.bundle > 1:
        lines.insert(0, f"# one job per bundle of {plan.bundle}; the bundles' tasks:")
        lines[1:1] = [f"#   {' '.join(map(str, tasks))}" for tasks in bundles.values()]
    leaders = ",".join(map(str, bundles))
    return "\n".join([*lines, f"queue task in ({leaders})"]) + "\n"


DAG_FILE = "campaign.dag"


def render_dag(
    plan: Plan, chosen: Collection[int] | None = None, python: str = sys.executable
) -> dict[str, str]:
    """A campaign as DAGMan files (pure): ``campaign.dag`` and a ``<step>.sub`` per node.

    A FINAL node, whatever happened, writes the run's report on the access point where
    DAGMan runs (a NOOP job whose POST script is ``python -m fcgtainer.runs.report``; the
    DAG runs in its directory, ``RUN_DIR/dags/<n>/``, so the run is ``../..``).

    One node per step: the cluster of its (chosen) tasks. A step's tasks check their
    upstream markers themselves, so a node succeeds whatever its tasks did (POST script
    ``/bin/true``): the next step runs, and only the tasks that read a failed one say
    "upstream failed". ``per_task`` waits for the whole parent node here (DAGMan's unit is
    the node); retries are per task, in each cluster (``max_retries``), never of a node.
    A step of more chosen tasks than the site's ``factory_above`` is a factory node
    (:func:`factory_commands`): DAGMan waits for its whole cluster, materialised or not.
    A bundled step (``bundle: N``) queues one job per bundle, as a run without steps does.
    """
    wanted = None if chosen is None else set(chosen)
    files: dict[str, str] = {}
    nodes = [f"# fcgtainer run {plan.run_id}: one node per step, a cluster of its tasks"]
    # DAGMan's strict mode makes warnings fatal, such as its node log being under /tmp (a
    # runs_dir there is legitimate on one machine): the markers, not DAGMan, judge the run
    files["dagman.config"] = "DAGMAN_USE_STRICT = 0\n"
    nodes.append("CONFIG dagman.config")
    edges: list[str] = []
    present: set[str] = set()
    for step in plan.step_plans():
        mine = [i for i in step.indices if wanted is None or i in wanted]
        if not mine:
            continue
        leaders = list(bundles_of(step.plan, mine))  # each task, unless the step is bundled
        desc = render_submit(step.plan, count=len(leaders))
        lines = [f"{key} = {value}" for key, value in desc.items()]
        lines.append(f"queue task in ({','.join(map(str, leaders))})")
        files[f"{step.name}.sub"] = "\n".join(lines) + "\n"
        nodes.append(f"JOB {step.name} {step.name}.sub")
        nodes.append(f"SCRIPT POST {step.name} /bin/true")
        parents = [name for name in step.needs if name in present]
        if parents:
            edges.append(f"PARENT {' '.join(parents)} CHILD {step.name}")
        present.add(step.name)
    files["report.sub"] = "executable = /bin/true\nuniverse = local\nqueue\n"
    nodes.append("FINAL report report.sub NOOP")
    nodes.append(f"SCRIPT POST report {python} -m fcgtainer.runs.report ../..")
    files[DAG_FILE] = "\n".join([*nodes, *edges]) + "\n"
    return files


def describe_dag(plan: Plan, python: str = sys.executable) -> str:
    """The DAG file and each node's submit file, one after the other (for ``--dry-run``)."""
    files = render_dag(plan, python=python)
    order = [DAG_FILE, *(name for name in files if name != DAG_FILE)]
    return "".join(f"# ---- {name}\n{files[name]}" for name in order)


def dag_id(cluster: int | str, index: int) -> str:
    """A campaign task's id: the DAGMan job's cluster and the task (its node job comes later)."""
    return f"dag{cluster}#{index}"


def _dag_split(task_id: str) -> tuple[str, int] | None:
    match = re.match(r"^dag(\d+)#(\d+)$", task_id)
    return (match[1], int(match[2])) if match else None


def _event_status(kind: str, event: Any) -> TaskStatus | None:
    if kind not in EVENT_STATES:
        return None
    state, why = EVENT_STATES[kind]
    if kind == "JOB_HELD":
        why = str(event.get("HoldReason", why))
    if kind == "JOB_TERMINATED" and not event.get("TerminatedNormally", True):
        sig = int(event.get("TerminatedBySignal", 0))
        return TaskStatus(State.FAILED, 128 + sig, f"killed by signal {sig}")
    return TaskStatus(state, reason=why)


NOT_MATERIALISED = "not materialised yet (late materialisation)"


@dataclass
class Factory:
    """A late-materialisation cluster as its job event log tells it.

    The schedd writes CLUSTER_SUBMIT when the factory is queued, a SUBMIT per proc as it
    materialises one, FACTORY_PAUSED / FACTORY_RESUMED, and CLUSTER_REMOVE when the factory
    is gone (``Completion`` 1: every item materialised; ``NextProcId``: the first proc that
    never was).
    """

    alive: bool = True
    paused: str | None = None
    complete: bool = False

    def unmaterialised(self) -> TaskStatus | None:
        """The state of a proc of this cluster that the log has no event for."""
        if self.alive and self.paused is not None:
            return TaskStatus(State.HELD, reason=f"factory paused: {self.paused}")
        if self.alive:
            return TaskStatus(State.PENDING, reason=NOT_MATERIALISED)
        if not self.complete:
            return TaskStatus(State.CANCELLED, reason="factory removed before materialising it")
        return None  # every proc was materialised: the queue or the history knows it


@dataclass
class EventLogView:
    """What a job event log says: each job's latest state, and each factory cluster."""

    jobs: dict[str, TaskStatus] = field(default_factory=dict)
    factories: dict[str, Factory] = field(default_factory=dict)


def read_events(events: Iterable[Any]) -> EventLogView:
    """Jobs (``cluster.proc`` -> latest status) and factories (cluster -> state) of a log."""
    view = EventLogView()
    for event in events:
        kind = getattr(event.type, "name", str(event.type))
        cluster = str(event.cluster)
        if kind == "CLUSTER_SUBMIT":
            view.factories[cluster] = Factory()
        elif kind == "CLUSTER_REMOVE":
            done = int(event.get("Completion", 0)) == 1
            view.factories[cluster] = Factory(alive=False, complete=done)
        elif kind in ("FACTORY_PAUSED", "FACTORY_RESUMED"):
            factory = view.factories.setdefault(cluster, Factory())
            paused = str(event.get("Reason", "") or "no reason given")
            factory.paused = paused if kind == "FACTORY_PAUSED" else None
        else:
            status = _event_status(kind, event)
            if status is not None:
                view.jobs[f"{cluster}.{event.proc}"] = status
    return view


def parse_events(events: Iterable[Any]) -> dict[str, TaskStatus]:
    """The latest state of each job in a job event log (``cluster.proc`` -> status).

    A normal termination maps to UNKNOWN here and is dropped by the caller: only the
    wrapper's marker says whether a task succeeded.
    """
    return read_events(events).jobs


def unmaterialised_by_order(ids: Iterable[str], ads: Iterable[Any]) -> dict[str, TaskStatus]:
    """Ids absent from queue and history that a factory has not materialised yet.

    Without the event log: a factory materialises its procs in ``ProcId`` order, so a proc
    above the highest one the queue holds for its cluster is still to come. (A plain
    cluster's procs all exist from the start: none of them is ever above that.)
    """
    highest: dict[str, int] = {}
    for ad in ads:
        cluster = str(ad["ClusterId"])
        highest[cluster] = max(highest.get(cluster, -1), int(ad["ProcId"]))
    out: dict[str, TaskStatus] = {}
    for job_id in ids:
        match = _ID.match(job_id)
        if match and match[1] in highest and int(match[2]) > highest[match[1]]:
            out[job_id] = TaskStatus(State.PENDING, reason=NOT_MATERIALISED)
    return out


def parse_ads(ads: Iterable[Any]) -> dict[str, TaskStatus]:
    """Statuses from schedd or history job ads (ClusterId, ProcId, JobStatus, HoldReason)."""
    out: dict[str, TaskStatus] = {}
    for ad in ads:
        job_id = f"{ad['ClusterId']}.{ad['ProcId']}"
        code = int(ad.get("JobStatus", 0))
        if code == 4:
            continue
        state, why = CONDOR_STATES.get(code, (State.UNKNOWN, f"JobStatus {code}"))
        if state is State.HELD and ad.get("HoldReason"):
            why = str(ad["HoldReason"])
        if state is State.PENDING and int(ad.get("NumJobStarts", 0) or 0) > 0:
            state, why = State.REQUEUED, "requeued"
        out[job_id] = TaskStatus(state, reason=why)
    return out


def _constraint(ids: Sequence[str]) -> str:
    clusters: dict[int, list[int]] = {}
    for job_id in ids:
        match = _ID.match(job_id)
        if match:
            clusters.setdefault(int(match[1]), []).append(int(match[2]))
    parts = [
        f"(ClusterId == {c} && member(ProcId, {{{', '.join(map(str, sorted(p)))}}}))"
        for c, p in sorted(clusters.items())
    ]
    return " || ".join(parts) or "false"


PROJECTION = ["ClusterId", "ProcId", "JobStatus", "HoldReason", "NumJobStarts", "FcgtainerTask"]


class HTCondorBackend(Backend):
    """HTCondor through the htcondor2 Python bindings (imported lazily)."""

    name = "htcondor"

    def describe(self, plan: Plan) -> str:
        """The submit description and queue statement (for ``--dry-run``)."""
        return describe_dag(plan) if plan.steps else describe_submit(plan)

    def _schedd(self) -> Any:
        """The schedd to talk to (tests substitute this method)."""
        import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

        opts = self.site.htcondor
        if opts.schedd or opts.collector:
            collector = htcondor2.Collector(opts.collector) if opts.collector else None
            collector = collector or htcondor2.Collector()
            ad = collector.locate(htcondor2.DaemonType.Schedd, opts.schedd)
            return htcondor2.Schedd(ad)
        return htcondor2.Schedd()

    def _index(self, cluster: int | str) -> Path:
        return self.site.runs_path / INDEX_DIR / f"{cluster}.log"

    def _link(self, plan: Plan, cluster: int | str) -> None:
        """Remember where a cluster's event log is, so that status can read it by id."""
        link = self._index(cluster)
        link.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(plan.run_dir / EVENT_LOG)

    def submit(
        self,
        plan: Plan,
        indices: Sequence[int] | None = None,
        *,
        queued: Mapping[int, str] | None = None,  # not needed: no limit leaves tasks waiting
    ) -> dict[int, str]:
        """One cluster with an item per chosen task (per bundle of them, with ``bundle: N``);
        returns ``cluster.proc`` per task (a bundle's tasks share their job's)."""
        import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

        chosen = list(indices) if indices is not None else [t.index for t in plan.tasks]
        if not chosen:
            return {}
        if plan.steps:
            return self._submit_dag(plan, chosen)
        bundles = bundles_of(plan, chosen)
        if plan.bundle > 1:  # before the submit: a bundle may start at once
            append_bundles(plan, bundles)
        description = htcondor2.Submit(render_submit(plan, count=len(bundles)))
        try:
            result = self._schedd().submit(description, itemdata=iter(itemdata(bundles.keys())))
        except htcondor2.HTCondorException as exc:
            # the schedd may have queued the cluster before the answer was lost: the caller
            # reconciles by UUID (find) exactly as after a timed-out sbatch
            raise CommandTimeout(
                ["htcondor2.Schedd.submit", plan.name], -1, stderr=str(exc)
            ) from exc
        cluster, first = int(result.cluster()), int(result.first_proc())
        if result.num_procs() != len(bundles):
            raise SubmitError(
                f"htcondor: cluster {cluster} has {result.num_procs()} jobs, not {len(bundles)}",
                "check the schedd log",
            )
        self._link(plan, cluster)
        return {
            index: f"{cluster}.{first + n}"
            for n, tasks in enumerate(bundles.values())
            for index in tasks
        }

    def _submit_dag(self, plan: Plan, chosen: Sequence[int]) -> dict[int, str]:
        """Write the campaign's DAG (a new directory per submission) and submit DAGMan once."""
        import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

        wanted = set(chosen)
        bundles = {
            leader: tasks
            for step in plan.step_plans()
            if step.plan.bundle > 1
            for leader, tasks in bundles_of(
                step.plan, [i for i in step.indices if i in wanted]
            ).items()
        }
        if bundles:  # before the submit: a bundle may start at once
            append_bundles(plan, bundles)
        root = plan.run_dir / "dags"
        root.mkdir(exist_ok=True)
        number = 1 + sum(1 for p in root.iterdir() if p.name.isdigit())
        where = root / str(number)
        where.mkdir()
        for name, text in render_dag(plan, chosen).items():
            (where / name).write_text(text)
        try:
            description = htcondor2.Submit.from_dag(
                str(where / DAG_FILE), {"UseDagDir": True, "BatchName": plan.name}
            )
            description["+FcgtainerRun"] = classad_string(plan.run_id, "+FcgtainerRun")
            result = self._schedd().submit(description)
        except htcondor2.HTCondorException as exc:
            raise CommandTimeout(
                ["htcondor2.Schedd.submit", plan.name], -1, stderr=str(exc)
            ) from exc
        cluster = int(result.cluster())
        leader = {i: first for first, tasks in bundles.items() for i in tasks}
        return {index: dag_id(cluster, leader.get(index, index)) for index in chosen}

    def find(self, plan: Plan) -> dict[int, str]:
        """Jobs carrying this run's UUID in the queue, else in the history."""
        schedd = self._schedd()
        constraint = f"FcgtainerRun == {classad_string(plan.run_id, 'run')}"
        ads = list(schedd.query(constraint=constraint, projection=PROJECTION))
        if not ads:
            ads = list(
                schedd.history(constraint=constraint, projection=PROJECTION, match=len(plan.tasks))
            )
        found: dict[int, tuple[int, int]] = {}
        for ad in ads:
            index, cluster, proc = int(ad["FcgtainerTask"]), int(ad["ClusterId"]), int(ad["ProcId"])
            if index not in found or found[index][0] < cluster:
                found[index] = (cluster, proc)
        for cluster in {c for c, _ in found.values()}:
            self._link(plan, cluster)
        bundles = tasktable.read_bundles(plan.run_dir) if plan.bundle > 1 else {}
        out: dict[int, tuple[int, int]] = {}
        for index, (c, p) in sorted(found.items(), key=lambda item: item[1]):
            # a bundle's job stands for each of its tasks; a task's newest job wins
            out.update(dict.fromkeys(bundles.get(index, (index,)), (c, p)))
        return {i: f"{c}.{p}" for i, (c, p) in sorted(out.items())}

    def status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        """Event log first; the schedd once for the rest; the history once for what is left.

        A campaign's tasks (``dagC#i``) are asked in the same single schedd query: the
        DAGMan job and the node jobs it submitted (``DAGManJobId``), by ``FcgtainerTask``.
        """
        dags = [i for i in ids if _dag_split(i)]
        if dags:
            rest = [i for i in ids if not _dag_split(i)]
            return {**self._dag_status(dags), **(self.status(rest) if rest else {})}
        wanted = set(ids)
        out: dict[str, TaskStatus] = {}
        explained: set[str] = set()
        by_cluster: dict[str, list[str]] = {}
        for job_id in ids:
            by_cluster.setdefault(job_id.split(".")[0], []).append(job_id)
        for cluster, mine in sorted(by_cluster.items()):
            view = self._read_log(cluster)
            for job_id, status in view.jobs.items():
                if job_id in wanted:
                    explained.add(job_id)
                    if status.state is not State.UNKNOWN:
                        out[job_id] = status
            factory = view.factories.get(cluster)
            waiting = factory.unmaterialised() if factory else None
            if waiting is not None:  # a factory's proc with no event of its own: not yet
                for job_id in mine:
                    if job_id not in view.jobs:
                        explained.add(job_id)
                        out[job_id] = waiting
        rest = [i for i in ids if i not in explained]
        if not rest:
            return out
        schedd = self._schedd()
        ads = list(schedd.query(constraint=_constraint(rest), projection=PROJECTION))
        out.update(parse_ads(ads))
        seen = {f"{a['ClusterId']}.{a['ProcId']}" for a in ads}
        rest = [i for i in rest if i not in seen]
        if rest:
            history = list(
                schedd.history(constraint=_constraint(rest), projection=PROJECTION, match=len(rest))
            )
            out.update(parse_ads(history))
            gone = {f"{a['ClusterId']}.{a['ProcId']}" for a in history}
            out.update(unmaterialised_by_order([i for i in rest if i not in gone], ads))
        return {i: s for i, s in out.items() if i in wanted}

    def _dag_status(self, ids: Sequence[str]) -> dict[str, TaskStatus]:
        clusters = sorted({c for c, _ in filter(None, map(_dag_split, ids))}, key=int)
        either = " || ".join(f"ClusterId == {c} || DAGManJobId == {c}" for c in clusters)
        ads = list(self._schedd().query(constraint=either, projection=[*PROJECTION, "DAGManJobId"]))
        alive = {str(ad["ClusterId"]) for ad in ads if str(ad["ClusterId"]) in clusters}
        nodes: dict[tuple[str, int], TaskStatus] = {}
        for ad in ads:
            if ad.get("DAGManJobId") is None or ad.get("FcgtainerTask") is None:
                continue
            status = parse_ads([ad]).get(f"{ad['ClusterId']}.{ad['ProcId']}")
            if status is not None:
                nodes[(str(ad["DAGManJobId"]), int(ad["FcgtainerTask"]))] = status
        out: dict[str, TaskStatus] = {}
        for task_id in ids:
            cluster, index = _dag_split(task_id) or ("", -1)
            if (cluster, index) in nodes:
                out[task_id] = nodes[(cluster, index)]
            elif cluster in alive:
                # DAGMan has not submitted its step yet, or its node job left the queue:
                # known but not placed (the marker, when there is one, decides)
                # (a factory step's procs that are not materialised yet look the same)
                out[task_id] = TaskStatus(State.UNKNOWN, reason="DAGMan: waiting for its step")
        return out

    def _read_log(self, cluster: str) -> EventLogView:
        path = self._index(cluster)
        if not path.exists():
            return EventLogView()
        import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

        with htcondor2.JobEventLog(str(path)) as log:
            return read_events(log.events(stop_after=0))

    def cancel(self, ids: Sequence[str]) -> None:
        """Remove ``ids`` in one schedd action."""
        import htcondor2  # type: ignore[import-untyped,import-not-found,unused-ignore]

        plain = list(dict.fromkeys(i for i in ids if not _dag_split(i)))  # bundles share
        if plain:
            self._schedd().act(htcondor2.JobAction.Remove, plain, reason="fcgtainer cancel")
        dags = sorted({c for c, _ in filter(None, map(_dag_split, ids))})
        if dags:  # removing DAGMan removes the node jobs it submitted: every step stops
            either = " || ".join(f"ClusterId == {c} || DAGManJobId == {c}" for c in dags)
            self._schedd().act(htcondor2.JobAction.Remove, either, reason="fcgtainer cancel")
