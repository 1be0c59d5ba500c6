"""Parameters are data: control characters refused, names are not paths, no parameter is
spliced into a `sh -c` script."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fcgtainer.config.job import load_job, parse_sets
from fcgtainer.config.site import load_site
from fcgtainer.errors import ConfigError

pytestmark = pytest.mark.unit
Write = Callable[[str, str], Path]


def test_nul_in_a_param_is_refused_naming_file_and_key(write: Write) -> None:
    job = write(
        "jobs/j/job.yaml", 'command: [echo, "{param.a}"]\nparams: {a: "a\\0--injected-arg"}\n'
    )
    with pytest.raises(ConfigError, match=r"job.yaml: params.a: .*U\+0000") as err:
        load_job(str(job))
    assert err.value.hint and "remove it" in err.value.hint


@pytest.mark.parametrize("char", ["\\x1b", "\\r", "\\x07", "\\x7f"])
def test_other_control_characters_are_refused(write: Write, char: str) -> None:
    job = write("jobs/j/job.yaml", f'command: [echo]\nparams: {{a: "x{char}y"}}\n')
    with pytest.raises(ConfigError, match="control character"):
        load_job(str(job))


def test_control_character_in_a_key_or_in_set(write: Write) -> None:
    job = write("jobs/j/job.yaml", 'command: [echo]\nparams: {"a\\tb": 1}\n')
    with pytest.raises(ConfigError, match="key contains the control character"):
        load_job(str(job))
    with pytest.raises(ConfigError, match=r"--set 'a'.*U\+0000"):
        parse_sets(["a=x\0--injected"])


def test_newline_and_tab_stay_legal_in_values(write: Write) -> None:
    job = write("jobs/j/job.yaml", 'command: [echo]\nparams: {a: "two\\nlines\\tand tab"}\n')
    assert load_job(str(job)).params["a"] == "two\nlines\tand tab"


@pytest.mark.parametrize("name", ["../escaped/x", "/abs", "a/b", "..", ".hidden", "-x", ""])
def test_job_name_is_a_name_not_a_path(write: Write, name: str) -> None:
    job = write("jobs/j/job.yaml", f"name: {name!r}\ncommand: [echo]\n")
    with pytest.raises(ConfigError, match=r"name: .*not a name"):
        load_job(str(job))


def test_site_name_is_a_name(write: Write) -> None:
    site = write("sites/s.yaml", "name: ../x\n")
    with pytest.raises(ConfigError, match=r"name: .*not a name"):
        load_site(str(site))


@pytest.mark.parametrize(
    "command",
    [
        '[sh, -c, "echo {param.greeting}"]',
        '[/bin/bash, -ec, "echo {param.greeting}"]',
        '[env, -i, A=1, bash, -c, "x {param.greeting}"]',
        "[python3, -c, \"print('{param.greeting}')\"]",
    ],
)
def test_param_in_a_shell_script_is_an_error_saying_why(write: Write, command: str) -> None:
    job = write("jobs/j/job.yaml", f"command: {command}\nparams: {{greeting: hi}}\n")
    with pytest.raises(ConfigError, match=r"would be run as code, not passed as data"):
        load_job(str(job))


@pytest.mark.parametrize(
    "command",
    [
        '[sh, -c, \'echo "$1"\', sh, "{param.greeting}"]',
        '[python3, -m, hello, --spec, "{spec}", "{param.greeting}"]',
        '[bash, -c, "echo {spec}"]',
    ],
)
def test_params_passed_as_arguments_are_fine(write: Write, command: str) -> None:
    job = write("jobs/j/job.yaml", f"command: {command}\nparams: {{greeting: hi}}\n")
    load_job(str(job))
