"""Job x site -> tasks: matrix, run numbers, overrides, spec files (pure)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer import node
from fcgtainer.config.job import load_job, parse_sets
from fcgtainer.config.site import Site, load_site
from fcgtainer.errors import ConfigError
from fcgtainer.plan.container import task_argv
from fcgtainer.plan.tasks import make_plan, payload_argv, task_spec
from fcgtainer.runs.rundir import write_secret_env

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]

GAN = """\
    command: [python3, -m, gan, --spec, "{spec}"]
    params: {iterations: 300, lr: 0.0001}
    matrix:
      particle: [photon, electron, pion]
      eta_slice: {range: [0, 100]}
    resources: {cpus: 1, memory: 2GiB, walltime: "01:00:00"}
    gpu_resources: {cpus: 1, memory: 7GB, gpus: 1, walltime: "24:00:00"}
    """
LAMARR = """\
    command: [python3, -m, lamarr_job, generate, --spec, "{spec}"]
    params: {events: 100}
    runs: {first: 1, last: 10, list: [20], banned: [3, 7]}
    """


def plan_for(job_path: Path, sets: list[str], site: Site | None = None):  # type: ignore[no-untyped-def]
    return make_plan(
        load_job(str(job_path)),
        site or Site(),
        parse_sets(sets),
        "00000000-0000-4000-8000-000000000000",
        runtime="native",
    )


def test_matrix_product_in_written_order(write: Write) -> None:
    plan = plan_for(write("jobs/gan/job.yaml", GAN), [])
    assert len(plan.tasks) == 300
    assert plan.tasks[0].values == {"particle": "photon", "eta_slice": 0}
    assert plan.tasks[101].values == {"particle": "electron", "eta_slice": 1}
    assert plan.tasks[299].name == "particle=pion,eta_slice=99"


def test_subset_with_set(write: Write) -> None:
    plan = plan_for(
        write("jobs/gan/job.yaml", GAN),
        ["particle=photon,pion", "eta_slice=20..24", "iterations=50"],
    )
    assert [t.values["eta_slice"] for t in plan.tasks] == [20, 21, 22, 23, 24] * 2
    assert plan.job.params["iterations"] == 50


def test_subset_with_a_step(write: Write) -> None:
    plan = plan_for(write("jobs/gan/job.yaml", GAN), ["particle=pion", "eta_slice=0..90:10"])
    assert [t.values["eta_slice"] for t in plan.tasks] == list(range(0, 100, 10))


def test_null_unsets_a_param_as_in_yaml(write: Write) -> None:
    plan = plan_for(write("jobs/gan/job.yaml", GAN), ["particle=pion", "lr=null", "iterations=~"])
    assert plan.job.params["lr"] is None and plan.job.params["iterations"] is None
    assert task_spec(plan, plan.tasks[0])["params"]["lr"] is None
    plan = plan_for(write("jobs/gan/job.yaml", GAN), ["particle=pion", "lr=nullable"])
    assert plan.job.params["lr"] == "nullable"


def test_a_param_placeholder_must_name_a_param_with_a_value(write: Write) -> None:
    job = GAN.replace(
        '"{spec}"]', '"{spec}", --lr, "{param.lr}", --particle, "{param.particle}", "{param.x}"]'
    ).replace("lr: 0.0001}", "lr: 0.0001, x: true}")
    path = write("jobs/gan/job.yaml", job)
    plan = plan_for(path, ["particle=pion", "eta_slice=3"])
    argv = payload_argv(plan, plan.tasks[0])
    assert argv[-5:] == ["--lr", "0.0001", "--particle", "pion", "true"]  # as in spec.json
    plan = plan_for(path, ["particle=pion", "eta_slice=3", "x=off"])
    assert payload_argv(plan, plan.tasks[0])[-1] == "off"  # YAML 1.2: a string
    with pytest.raises(ConfigError, match=r"passes \{param.lr\}, and --set lr=null leaves") as err:
        plan_for(path, ["lr=null"])
    assert err.value.hint is not None and "--set lr=VALUE" in err.value.hint
    path = write("jobs/gan/job.yaml", job.replace("lr: 0.0001", "lr: null"))
    with pytest.raises(ConfigError, match=r"params\.lr: null leaves it without a value"):
        plan_for(path, [])
    path = write("jobs/gan/job.yaml", job.replace("{param.lr}", "{param.rate}"))
    with pytest.raises(ConfigError, match=r"\{param.rate\} names no param") as err:
        plan_for(path, [])
    assert err.value.hint is not None and "declare params.rate" in err.value.hint


def test_set_unknown_value_or_key(write: Write) -> None:
    path = write("jobs/gan/job.yaml", GAN)
    with pytest.raises(ConfigError, match="'muon' is not a value of matrix axis"):
        plan_for(path, ["particle=muon"])
    with pytest.raises(ConfigError) as err:
        plan_for(path, ["iteration=5"])
    assert err.value.hint is not None and "iterations" in err.value.hint


def test_run_numbers_skip_banned(write: Write) -> None:
    path = write("jobs/lamarr/job.yaml", LAMARR)
    plan = plan_for(path, [])
    assert [t.values["run"] for t in plan.tasks] == [1, 2, 4, 5, 6, 8, 9, 10, 20]
    plan = plan_for(path, ["runs=1..4"])
    assert [t.values["run"] for t in plan.tasks] == [1, 2, 4]


def test_gpu_resources_only_on_gpu_sites(write: Write) -> None:
    path = write("jobs/gan/job.yaml", GAN)
    assert plan_for(path, []).resources.gpus == 0
    gpu_site = Site(scheduler="slurm", gpus={"count": 4, "type": "A100"})  # type: ignore[arg-type]
    plan = plan_for(path, [], gpu_site)
    assert plan.resources.gpus == 1 and plan.resources.memory == 7168


HOSTILE = ["a 0", "a'; echo foo", 'a"=0"', "$(touch x)", "two\nlines", "semi;colon"]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_param_reaches_payload_unchanged(write: Write, tmp_path: Path, value: str) -> None:
    job = write(
        "jobs/echo/job.yaml",
        """\
        command: [python3, -c, "import json,sys; print(json.load(open(sys.argv[1]))['params']['msg'])", "{spec}"]
        params: {msg: x}
        """,
    )
    site = load_site(str(write("sites/s.yaml", f"runtime: native\nruns_dir: {tmp_path}/runs\n")))
    plan = plan_for(job, [f"msg={value}"], site)
    task = plan.tasks[0]
    spec_path = plan.task_dir(0) / "spec.json"
    spec_path.parent.mkdir(parents=True)
    spec_path.write_text(json.dumps(task_spec(plan, task)))
    write_secret_env(plan, os.environ)
    node.install(plan.run_dir)
    done = subprocess.run(task_argv(plan, task), capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == value + "\n"
    assert not (tmp_path / "x").exists()


def test_environment_is_an_allow_list(write: Write, tmp_path: Path) -> None:
    job = write("jobs/env/job.yaml", "command: [env]\n")
    site = load_site(
        str(
            write(
                "sites/s.yaml",
                f"runtime: native\nruns_dir: {tmp_path}\n"
                "env: {allow: [LANG], set: {FOO: bar}}\n",
            )
        )
    )
    plan = plan_for(job, [], site)
    host = {"LANG": "C", "AWS_SECRET": "s3cr3t", "HOME": "/h"}
    write_secret_env(plan, host)
    node.install(plan.run_dir)
    argv = task_argv(plan, plan.tasks[0], host)
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    env = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert env["LANG"] == "C" and env["FOO"] == "bar"
    assert "AWS_SECRET" not in env
    assert env["FCGTAINER_TASK"] == "0" and env["FCGTAINER_RUN"] == plan.run_id


def test_planning_30000_tasks(write: Write) -> None:
    job = write(
        "jobs/big/job.yaml",
        """\
        command: [/bin/true]
        matrix: {a: {range: [0, 300]}, b: {range: [0, 100]}}
        """,
    )
    plan = plan_for(job, [])
    assert len(plan.tasks) == 30000 and plan.tasks[-1].values == {"a": 299, "b": 99}
