"""Where sites and jobs are found: project, user, $FCGTAINER_SITES, shipped; first wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from fcgtainer import paths
from fcgtainer.config.site import available_sites, load_site

pytestmark = pytest.mark.unit


def test_search_order_and_first_match_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, config, extra = tmp_path / "project", tmp_path / "config", tmp_path / "extra"
    for directory, text in ((project, "project"), (config / "fcgtainer", "user"), (extra, "env")):
        (directory / "sites").mkdir(parents=True)
        (directory / "sites" / "cnaf.yaml").write_text(f"description: {text}\n")
        (directory / "sites" / f"only-{text}.yaml").write_text(f"description: {text}\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv("FCGTAINER_SITES", str(extra / "sites"))
    origins = [d.origin for d in paths.search_path("sites")]
    assert origins == ["project", "user", "$FCGTAINER_SITES", "shipped"]
    assert load_site("cnaf").description == "project"
    found = available_sites()
    assert {"only-project", "only-user", "only-env", "leonardo"} <= set(found)
    assert paths.origin(found["only-user"], "sites") == "user"
    assert paths.origin(found["leonardo"], "sites") == "shipped"
    (project / "sites" / "cnaf.yaml").unlink()
    assert load_site("cnaf").description == "user"


def test_git_commit_of_a_worktree(tmp_path: Path) -> None:
    common = tmp_path / "main.git"
    (common / "refs" / "heads").mkdir(parents=True)
    (common / "refs" / "heads" / "branch").write_text("abc\n")
    private = common / "worktrees" / "wt"
    private.mkdir(parents=True)
    (private / "HEAD").write_text("ref: refs/heads/branch\n")
    (private / "commondir").write_text("../..\n")
    checkout = tmp_path / "wt"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {private}\n")
    assert paths.git_commit(checkout) == "abc"
