"""One static report per run: ``RUN_DIR/report/index.html``, opened from the filesystem.

Plain HTML and inline CSS, no script: every step with its tasks (state, exit code, attempts,
start, end and duration from the wrapper's ``attempts`` record), links to every image the
tasks wrote under ``out/<i>/``, the last step's figures shown, and the provenance (the
manifest: versions, image digest, payload code, overrides, cache keys). A task that writes
``out/<i>/metrics.json`` (a flat mapping of numbers) gets its metrics in the table; for a
step whose matrix has two axes (particle x eta slice...), each metric is also drawn as a
heat map whose cells link to that task's plots.

It is rebuilt from what exists at any time (``fcgtainer report RUN``): a partial run gives
a partial report.
"""

from __future__ import annotations

import html
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fcgtainer.runs.journal import RunRecord, TaskRecord
from fcgtainer.states import State, TaskStatus

IMAGES = (".png", ".svg", ".jpg", ".jpeg", ".gif", ".webp")
MAX_IMAGES_PER_TASK = 200
CSS = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;font-size:90%}
th{background:#f3f3f3}
.succeeded{color:#080}.failed,.lost{color:#c00}.upstream{color:#c60}.waiting{color:#a80}.cancelled{color:#909}
img.fig{max-width:420px;margin:.3em;border:1px solid #ddd}
pre{background:#f7f7f7;padding:.5em;overflow:auto;font-size:85%}
"""


def report_path(run_dir: Path) -> Path:
    """Where a run's report is."""
    return run_dir / "report" / "index.html"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def task_images(run_dir: Path, index: int) -> list[Path]:
    """The image files a task wrote under ``out/<i>/`` (links followed: cached results)."""
    out = run_dir / "out" / str(index)
    found: list[Path] = []
    for root, _dirs, files in os.walk(out, followlinks=True):
        for name in sorted(files):
            if name.lower().endswith(IMAGES):
                found.append(Path(root) / name)
        if len(found) >= MAX_IMAGES_PER_TASK:
            break
    return sorted(found)[:MAX_IMAGES_PER_TASK]


def _href(path: Path, report_dir: Path) -> str:
    return _e(os.path.relpath(path, report_dir))


def _timing(run_dir: Path, index: int) -> tuple[int, str, str, str]:
    """Attempts, first start, last end and total duration from the wrapper's record."""
    try:
        lines = (run_dir / "tasks" / str(index) / "attempts").read_text().splitlines()
    except OSError:
        return 0, "", "", ""
    rows = [line.split() for line in lines if len(line.split()) >= 5]
    if not rows:
        return 0, "", "", ""
    start, end = int(rows[0][2]), int(rows[-1][3])
    seconds = sum(int(r[3]) - int(r[2]) for r in rows)
    stamp = "%Y-%m-%d %H:%M:%S"
    return (
        len(rows),
        time.strftime(stamp, time.gmtime(start)),
        time.strftime(stamp, time.gmtime(end)),
        f"{seconds} s",
    )


def _metrics(run_dir: Path, index: int) -> dict[str, float]:
    try:
        data = json.loads((run_dir / "out" / str(index) / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _steps(run: RunRecord, tasks: Sequence[TaskRecord]) -> dict[str, list[TaskRecord]]:
    steps: dict[str, list[TaskRecord]] = {}
    campaign = bool((run.manifest.get("job") or {}).get("steps"))
    for task in tasks:
        name = task.name.split(",", 1)[0].removeprefix("step=") if campaign else run.job
        steps.setdefault(name, []).append(task)
    return steps


def _values(task: TaskRecord) -> dict[str, str]:
    parts = [p.partition("=") for p in task.name.split(",")]
    return {k: v for k, _, v in parts if k and k != "step"}


def _heat_maps(
    step: str, tasks: Sequence[TaskRecord], metrics: Mapping[int, Mapping[str, float]]
) -> list[str]:
    """A table per metric over the step's two matrix axes, each cell linking to its task."""
    axes = list(_values(tasks[0])) if tasks else []
    names = sorted({m for i in metrics.values() for m in i})
    if len(axes) != 2 or not names:
        return []
    rows_axis, cols_axis = axes
    rows = list(dict.fromkeys(_values(t)[rows_axis] for t in tasks))
    cols = list(dict.fromkeys(_values(t)[cols_axis] for t in tasks))
    by_cell = {(_values(t)[rows_axis], _values(t)[cols_axis]): t for t in tasks}
    out = []
    for name in names:
        values = [m[name] for m in metrics.values() if name in m]
        low, high = min(values), max(values)
        out.append(f"<h3>{_e(step)}: {_e(name)} over {_e(rows_axis)} x {_e(cols_axis)}</h3>")
        out.append("<table><tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>")
        for row in rows:
            cells = []
            for col in cols:
                task = by_cell.get((row, col))
                value = metrics.get(task.index, {}).get(name) if task else None
                if task is None or value is None:
                    cells.append("<td></td>")
                    continue
                share = 0.0 if high == low else (value - low) / (high - low)
                colour = f"hsl({int(120 - 120 * share)},70%,80%)"
                cells.append(
                    f'<td style="background:{colour}"><a href="#task-{task.index}">'
                    f"{value:.3g}</a></td>"
                )
            out.append(f"<tr><th>{_e(row)}</th>{''.join(cells)}</tr>")
        out.append("</table>")
    return out


def build(run: RunRecord, tasks: Sequence[TaskRecord]) -> Path:
    """Write the report from what exists now; returns its path."""
    path = report_path(run.run_dir)
    here = path.parent
    here.mkdir(parents=True, exist_ok=True)
    counts: dict[State, int] = {}
    for task in tasks:
        counts[task.status.state] = counts.get(task.status.state, 0) + 1
    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items()))
    body = [
        f"<h1>{_e(run.job)}: run {_e(run.id)}</h1>",
        f"<p>site {_e(run.site)} ({_e(run.scheduler)}); {len(tasks)} task(s): {_e(summary)}"
        f"<br>report written {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
        " (rebuild it with <code>fcgtainer report "
        f"{_e(run.id[:8])}</code>)</p>",
    ]
    steps = _steps(run, tasks)
    last = list(steps)[-1] if steps else ""
    for step, members in steps.items():
        metrics = {t.index: _metrics(run.run_dir, t.index) for t in members}
        metrics = {i: m for i, m in metrics.items() if m}
        names = sorted({m for i in metrics.values() for m in i})
        body.append(f"<h2>step {_e(step)}</h2>")
        body += _heat_maps(step, members, metrics)
        header = ["task", "name", "state", "exit", "attempts", "start", "end", "duration"]
        body.append(
            "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in [*header, *names, "images"])
        )
        figures: list[Path] = []
        for task in members:
            state = task.status.state
            css = {State.UPSTREAM_FAILED: "upstream", State.UPSTREAM_WAIT: "waiting"}.get(
                state, state.value
            )
            tries, start, end, took = _timing(run.run_dir, task.index)
            images = task_images(run.run_dir, task.index)
            if step == last:
                figures += images
            links = " ".join(f'<a href="{_href(p, here)}">{_e(p.name)}</a>' for p in images)
            code = "" if task.status.exit_code is None else str(task.status.exit_code)
            cells = [
                str(task.index),
                _e(task.name),
                f'<span class="{css}">{_e(state.value)}</span>'
                + (f" ({_e(task.status.reason)})" if task.status.reason else ""),
                code,
                str(tries),
                start,
                end,
                took,
                *(
                    f"{metrics.get(task.index, {}).get(n, ''):.4g}"
                    if n in metrics.get(task.index, {})
                    else ""
                    for n in names
                ),
                links,
            ]
            body.append(
                f'<tr id="task-{task.index}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
            )
        body.append("</table>")
        if step == last and figures:
            body.append(f"<h3>figures of step {_e(step)}</h3>")
            body += [
                f'<a href="{_href(p, here)}"><img class="fig" src="{_href(p, here)}" '
                f'alt="{_e(p.name)}"></a>'
                for p in figures
            ]
    provenance = json.dumps(dict(run.manifest), indent=1, sort_keys=True, default=str)
    body += ["<h2>provenance</h2>", f"<pre>{_e(provenance)}</pre>"]
    page = (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{_e(run.job)} {_e(run.id[:8])}</title><style>{CSS}</style></head>"
        "<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    tmp = path.with_name(f".index.html.{os.getpid()}")
    tmp.write_text(page)
    os.replace(tmp, path)
    return path


def tasks_from_run_dir(run_dir: Path) -> list[TaskRecord]:
    """The tasks as the run directory alone says (specs and markers, no journal).

    For a report written where the journal is not (DAGMan's FINAL node, on the access
    point): a marker 0 is succeeded, 88 upstream failed, 89 waiting on upstream, another
    code failed; no marker: not finished (unknown).
    """
    from fcgtainer import tasktable
    from fcgtainer.runs.rundir import read_marker
    from fcgtainer.states import from_marker

    out = []
    for index in tasktable.indices(run_dir):
        spec = tasktable.spec(run_dir, index) or {}
        name = str(spec.get("task_name", index))
        if spec.get("step"):
            name = f"step={spec['step']},{name}"
        marker = read_marker(run_dir, index)
        status = TaskStatus(State.UNKNOWN, None, "no marker yet")
        if marker is not None:
            status = from_marker(marker)
        out.append(TaskRecord(str(spec.get("run", "")), index, name, None, status, 0.0))
    return out


def build_from_run_dir(run_dir: Path) -> Path:
    """The report of a run from its directory alone (see :func:`tasks_from_run_dir`)."""
    data = json.loads((run_dir / "manifest.json").read_text())
    site = data.get("site") or {}
    run = RunRecord(
        str(data.get("run", "")),
        str((data.get("job") or {}).get("name", "")),
        str(site.get("name", "")),
        str(site.get("scheduler", "")),
        run_dir,
        0.0,
        "submitted",
        "",
        data,
    )
    return build(run, tasks_from_run_dir(run_dir))


def main(argv: Sequence[str]) -> int:
    """``python -m fcgtainer.runs.report RUN_DIR``: DAGMan's FINAL node runs this."""
    print(build_from_run_dir(Path(argv[0]).resolve()))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
