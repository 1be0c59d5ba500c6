"""Plans rendered by the golden tests: plain, GPU-and-checkpoint, and hostile values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fcgtainer.config.job import Job
from fcgtainer.config.site import Site
from fcgtainer.plan.tasks import Plan, make_plan

RUN_ID = "00000000-1111-2222-3333-444444444444"
HOSTILE = ("a 0", "a'; echo foo", 'a"=0"', "$(touch x)", "a\nb")


def build_plan(
    job: dict[str, Any], site: dict[str, Any], *, image: str | None = None, job_dir: str
) -> Plan:
    """A plan from job and site mappings, as ``submit`` would make it (no file needed)."""
    loaded_job = Job.model_validate(
        {"name": "hello", "command": ["python3", "-m", "hello", "--spec", "{spec}"], **job}
    ).model_copy(update={"job_dir": job_dir, "source": f"{job_dir}/job.yaml"})
    loaded_site = Site.model_validate(site)
    runtime = "apptainer" if image else "native"
    return make_plan(loaded_job, loaded_site, {}, RUN_ID, runtime=runtime, image=image)


def plain_plan() -> Plan:
    """Four tasks on a bare SLURM or HTCondor site."""
    return build_plan(
        {"matrix": {"n": {"range": [0, 4]}}},
        {"name": "plain", "scheduler": "slurm", "runs_dir": "/runs"},
        job_dir="/jobs/hello",
    )


def gpu_plan() -> Plan:
    """A checkpointing GPU job on a site with every scheduler option set."""
    return build_plan(
        {
            "matrix": {"particle": ["photon", "pion"], "eta_slice": {"range": [0, 150]}},
            "resources": {"cpus": 4, "memory": "7GiB", "gpus": 1, "walltime": "24:00:00"},
            "checkpoint": {"enabled": True, "signal_margin": 600},
            "retries": 2,
        },
        {
            "name": "gpu",
            "scheduler": "slurm",
            "runs_dir": "/work/u/runs",
            "slurm": {
                "partition": "boost_usr_prod",
                "account": "INF25_lhcb",
                "qos": "normal",
                "constraint": "a100",
                "array_limit": 64,
                "extra_flags": ["--nice=10"],
            },
            "htcondor": {
                "job_flavour": "tomorrow",
                "max_runtime": 86400,
                "requirements": 'OpSysAndVer == "AlmaLinux9"',
                "extra": {"+AccountingGroup": '"group_u_LHCB.u"'},
            },
            "apptainer": {"modules": ["apptainer/1.3"]},
            "gpus": {"count": 4, "type": "A100"},
        },
        image="/images/standalone.sif",
        job_dir="/jobs/fastcalogan",
    )


def hostile_plan(root: Path) -> Plan:
    """Every value a user or site can choose, set to something a shell would misread."""
    hostile = " | ".join(HOSTILE)
    return build_plan(
        {
            "name": "h-a.0_x",  # a name, never a path or shell text (checked on load)
            "matrix": {"n": {"range": [0, 3]}},
            "params": {"greeting": hostile},
        },
        {
            "name": "hostile",
            "scheduler": "slurm",
            "runs_dir": str(root / "runs a 0 'q' \"d\" $(touch x)"),
            "slurm": {
                "partition": "a 0",
                "account": "a'; echo foo",
                "qos": 'a"=0"',
                "constraint": "$(touch x)",
            },
            "htcondor": {"job_flavour": 'a"=0" $(touch x)'},
            "env": {"set": {"HOSTILE": hostile}},
        },
        job_dir=str(root / "job $(touch x)"),
    )


def factory_plan() -> Plan:
    """Six tasks on an HTCondor site whose factory threshold is four: a late-mat factory."""
    return build_plan(
        {"matrix": {"n": {"range": [0, 6]}}},
        {
            "name": "factory",
            "scheduler": "htcondor",
            "runs_dir": "/runs",
            "htcondor": {"factory_above": 4, "max_idle": 50, "max_materialize": 200},
        },
        job_dir="/jobs/hello",
    )


def campaign_plan(scheduler: str = "slurm", htcondor: dict[str, Any] | None = None) -> Plan:
    """Three steps: make 6 -> check each (per_task) -> sum them (all)."""
    return build_plan(
        {
            "name": "hello-campaign",
            "matrix": {"n": {"range": [0, 6]}},
            "steps": {
                "make": {},
                "check": {"needs": {"make": "per_task"}},
                "sum": {
                    "needs": {"check": "all"},
                    "matrix": {},
                    "resources": {"cpus": 2, "memory": "1GiB", "walltime": "00:30:00"},
                },
            },
        },
        {"name": "plain", "scheduler": scheduler, "runs_dir": "/runs", "htcondor": htcondor or {}},
        job_dir="/jobs/hello-campaign",
    )


def split_campaign_plan() -> Plan:
    """The campaign on a site whose profile caps arrays at 4 tasks: each step of 6 is split."""
    return build_plan(
        {
            "name": "hello-campaign",
            "matrix": {"n": {"range": [0, 6]}},
            "steps": {
                "make": {},
                "check": {"needs": {"make": "per_task"}},
                "sum": {"needs": {"check": "all"}, "matrix": {}},
            },
        },
        {
            "name": "plain",
            "scheduler": "slurm",
            "runs_dir": "/runs",
            "slurm": {"limits": {"max_array_size": 4}},
        },
        job_dir="/jobs/hello-campaign",
    )
