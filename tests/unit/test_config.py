"""Bad input: each gives one line naming file, key and fix, and exit code 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.config.job import load_job
from fcgtainer.config.loader import parse_memory_mb, parse_walltime_s
from fcgtainer.config.site import available_sites, load_site, load_site_file
from fcgtainer.errors import ConfigError

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]


def test_every_shipped_site_loads() -> None:
    sites = available_sites()
    assert {"local", "bologna", "oph", "cnaf", "leonardo", "lxplus"} <= set(sites)
    for path in sites.values():
        load_site_file(path)


def test_malformed_yaml(write: Write) -> None:
    path = write("sites/bad.yaml", "scheduler: [slurm\n")
    with pytest.raises(ConfigError) as err:
        load_site(str(path))
    assert str(path) in err.value.message and "malformed YAML" in err.value.message
    assert "line" in err.value.message and err.value.hint


def test_duplicate_key(write: Write) -> None:
    path = write("sites/dup.yaml", "scheduler: slurm\nscheduler: local\n")
    with pytest.raises(ConfigError, match=r"line 2: duplicate key 'scheduler'"):
        load_site(str(path))


def test_unknown_key_lists_valid_keys(write: Write) -> None:
    path = write("sites/typo.yaml", "scheduler: slurm\nslurm: {partiton: gpu}\n")
    with pytest.raises(ConfigError) as err:
        load_site(str(path))
    assert err.value.message == f"{path}: slurm.partiton: unknown key"
    assert err.value.hint is not None and "partition" in err.value.hint


def test_wrong_type(write: Write) -> None:
    path = write("sites/type.yaml", "resources: {cpus: many}\n")
    with pytest.raises(ConfigError) as err:
        load_site(str(path))
    assert "resources.cpus" in err.value.message and "many" in err.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_site(str(tmp_path / "nope.yaml"))


def test_unknown_site_and_job() -> None:
    with pytest.raises(ConfigError, match="no such site") as err:
        load_site("atlantis")
    assert err.value.hint is not None and "lxplus" in err.value.hint
    with pytest.raises(ConfigError, match="no such job"):
        load_job("nojob")


@pytest.mark.parametrize("bad", ["/data,evil", "/data:/etc"])
def test_bind_path_with_separator(write: Write, bad: str) -> None:
    path = write("sites/bind.yaml", f"apptainer: {{binds: [{{source: '{bad}'}}]}}\n")
    with pytest.raises(ConfigError) as err:
        load_site(str(path))
    assert "apptainer.binds.0.source" in err.value.message and "','" in err.value.message


def test_extra_flag_managed_by_fcgtainer(write: Write) -> None:
    path = write("sites/flags.yaml", "slurm: {extra_flags: ['--time=10']}\n")
    with pytest.raises(ConfigError, match="--time is set by fcgtainer"):
        load_site(str(path))


def test_job_command_must_be_argv(write: Write) -> None:
    path = write("jobs/x/job.yaml", "command: 'python3 train.py'\n")
    with pytest.raises(ConfigError, match="command"):
        load_job(str(path))


def test_job_unknown_placeholder(write: Write) -> None:
    path = write("jobs/x/job.yaml", "command: [run, '{oops}']\n")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        load_job(str(path))


@pytest.mark.parametrize(
    ("text", "mb"), [("2GiB", 2048), ("7GB", 7168), ("500M", 500), (1024, 1024), ("1.5G", 1536)]
)
def test_memory(text: object, mb: int) -> None:
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24:00:00", 86400), ("1-00:00:00", 86400), ("00:10:00", 600), ("1:30", 5400), (600, 600)],
)
def test_walltime(text: object, seconds: int) -> None:
    assert parse_walltime_s(text) == seconds


def test_runs_dir_with_an_unset_variable(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORK", raising=False)
    site = load_site(str(write("sites/cineca.yaml", "runs_dir: $WORK/runs\n")))
    with pytest.raises(ConfigError, match=r"runs_dir: '\$WORK/runs' names a variable"):
        _ = site.runs_path
