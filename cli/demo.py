"""`spanlake demo`: a demo support assistant sending realistic traces to a running spanlake.

`spanlake up` runs it once on a first start (server/demo.py: `python -m spanlake.cli.demo --quiet`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import threading
import urllib.request
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spanlake.server.demo import NO_DEMO_ENV, PARENT_ENV, install_hint, missing_packages

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_DASHBOARD = "http://127.0.0.1:8501"

no_demo_option = click.option(
    "--no-demo",
    is_flag=True,
    envvar=NO_DEMO_ENV,
    show_envvar=True,
    help="On a first start with an empty lake, do not run the demo app into project `demo`.",
)


def probe(endpoint: str, timeout_s: float = 3.0) -> str | None:
    """None when a spanlake collector answers at `endpoint`, else why not."""
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/health", timeout=timeout_s) as r:
            return None if r.status == 200 else f"HTTP {r.status}"
    except Exception as e:
        return str(getattr(e, "reason", None) or e)


def next_steps(summary: Any, dashboard_url: str, evaluators: bool = False) -> list[str]:
    """Lines telling a newcomer what to look at, with trace ids from this run."""
    failed = next((r for r in summary.results if r.outcome == "failure" and r.escalations), None)
    errored = next((r for r in summary.results if r.outcome == "error"), None)
    running = dashboard_url.startswith("http")
    if running:
        lines = [f"  dashboard      {dashboard_url}  (Traces, Sessions, Overview, Reports: pick project demo)"]
        if evaluators:
            lines.append(
                f"  evaluators     {dashboard_url}/evaluators  (a judge's verdicts against your users' feedback)"
            )
    else:
        lines = ["  dashboard      not running (spanlake up --no-dashboard); `spanlake dashboard` starts it"]
    for label, r in (("an escalation", failed), ("an exception", errored)):
        if r is not None and r.trace_id:
            where = f"{dashboard_url}/trace?trace={r.trace_id}&project=demo" if running else f"trace {r.trace_id}"
            lines.append(f"  {label:<14} {where}")
    reports = [
        "tasks -g prompt_version,outcome",
        "compare --by prompt_version --a v1 --b v2",
        "validation -g validator,prompt_version",
        "validation-errors",
        "retrieval",
        "latency -g model",
        "cost -g model",
        "unpriced",
    ]
    lines += [f"  spanlake report {r} --project demo" for r in reports]
    lines.append(
        "  spanlake query \"SELECT value, score, comment, author FROM labels WHERE project = 'demo'\"  (user feedback)"
    )
    lines.append("  (add --data-dir DIR to report/query if `spanlake up` was started with one)")
    return lines


def print_summary(summary: Any, dashboard_url: str, evaluators: bool = False) -> None:
    """The final summary: what happened, then what to look at next."""

    def counts(c: Any) -> str:
        return " · ".join(f"{k} {v}" for k, v in c.most_common()) or "none"

    rates = " · ".join(f"{v} {rate:.0%}" for v in ("v1", "v2") if (rate := summary.success_rate(v)) is not None)
    stored = sum(f.stored for f in summary.feedback)
    n = len(summary.results)
    click.echo(
        f"\nspanlake demo: {n} support tickets answered in {summary.seconds:.1f} s "
        f"(seed {summary.seed}), traces sent to {summary.endpoint}, project demo\n"
        f"  outcomes            {counts(summary.outcomes())}\n"
        f"  success by prompt   {rates}\n"
        f"  failed validations  {counts(summary.failed_validations())}\n"
        f"  fallbacks           {sum(r.fallbacks for r in summary.results)}, "
        f"escalations {sum(r.escalations for r in summary.results)}\n"
        f"  user feedback       {stored} of {len(summary.feedback)} stored\n"
        "  why tasks failed:"
    )
    for reason, count in summary.reasons().most_common():
        click.echo(f"    {count:>3}  {reason}")
    if not summary.flushed:
        click.echo("  warning: not every span was delivered in time; see the collector's log")
    click.echo("\nWhat to look at next:")
    for line in next_steps(summary, dashboard_url, evaluators):
        click.echo(line)


@click.command("demo")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, help="spanlake's OTLP/HTTP address.")
@click.option(
    "--tickets", type=click.IntRange(1, 5000), default=60, show_default=True, envvar="SPANLAKE_DEMO_TICKETS",
    help="Tickets to answer.",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=42, show_default=True, envvar="SPANLAKE_DEMO_SEED",
    help="Same seed, same tickets and outcomes.",
)  # fmt: skip
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True, help="Users at once.")
@click.option(
    "--time-scale",
    type=click.FloatRange(0.01, 10.0),
    default=1.0,
    show_default=True,
    envvar="SPANLAKE_DEMO_TIME_SCALE",
    help="Multiply the simulated model and tool latencies (0.2: five times faster).",
)
@click.option(
    "--dashboard-url", default=DEFAULT_DASHBOARD, show_default=True,
    help="Where the summary points for the UI (`off`: no dashboard is running).",
)  # fmt: skip
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome per ticket as JSON lines at the end.")
@click.option(
    "--judge-port",
    type=click.IntRange(1, 65535),
    default=None,
    hidden=True,
    help="Also serve the fake OpenAI-compatible judge on this loopback port, and keep serving it after the "
    "tickets until stopped (what `spanlake up` runs on a first start, for the demo's evaluators).",
)
def demo(
    endpoint: str,
    tickets: int,
    seed: int,
    concurrency: int,
    time_scale: float,
    dashboard_url: str,
    quiet: bool,
    as_json: bool,
    judge_port: int | None,
) -> None:
    """Run a demo support assistant against a running spanlake, into project `demo`.

    \b
    The app is built on spanlake-sdk and the real openai-v2 auto-instrumentation, and talks to a
    fake OpenAI-compatible server started in this process (no network, no API key). It
    retrieves help-center articles, calls tools, asks for JSON and validates it, falls back to a
    bigger model, applies policies, escalates to people, and its users leave feedback; two
    prompt versions (v1, v2) run side by side. Start spanlake first: `spanlake up`.
    """
    endpoint = endpoint.rstrip("/")
    if missing := missing_packages():
        raise click.ClickException(f"the demo needs {' and '.join(missing)}: {install_hint(missing)}")
    from spanlake.demo.runner import run_demo  # optional dependency: the `demo` extra (openai, openai-v2)

    if (why := probe(endpoint)) is not None:
        raise click.ClickException(f"no spanlake at {endpoint} ({why}); start it with `spanlake up` or pass --endpoint")
    judge = None
    if judge_port is not None:
        from spanlake.demo.fake_openai import FakeOpenAI  # optional dependency: the `demo` extra, as run_demo

        judge = FakeOpenAI(port=judge_port).start()  # before the first trace: the judge may be called soon after
    columns = (TextColumn("answering tickets"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True, disable=quiet) as progress:
        bar = progress.add_task("tickets", total=tickets)
        summary = run_demo(
            endpoint,
            seed=seed,
            tickets=tickets,
            concurrency=concurrency,
            time_scale=time_scale,
            on_result=lambda r: progress.advance(bar),
        )
    print_summary(summary, dashboard_url, evaluators=judge is not None)
    if as_json:
        for r in summary.results:
            row = {"index": r.ticket.index, "trace_id": r.trace_id, "outcome": r.outcome, "reason": r.reason,
                   "prompt_version": r.ticket.prompt_version, "intent": r.ticket.intent, "documents": r.documents,
                   "failed_validations": r.failed_validations, "fallbacks": r.fallbacks,
                   "escalations": r.escalations}  # fmt: skip
            click.echo(json.dumps(row))
        for f in summary.feedback:
            click.echo(json.dumps({"feedback": f.__dict__}))
    if judge is not None:
        click.echo(f"\nserving the demo's judge at {judge.base_url} until stopped", nl=True)
        sys.stdout.flush()
        threading.Event().wait()  # until SIGTERM (the server stopping) or the parent's death


def _child_main() -> None:  # pragma: no cover - runs in the background child
    """Exit with the parent (`spanlake up`) on Linux, then run the command."""
    if sys.platform.startswith("linux") and os.environ.get(PARENT_ENV):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if str(os.getppid()) != os.environ[PARENT_ENV]:
            sys.exit(0)
    demo(prog_name="spanlake demo")


if __name__ == "__main__":
    _child_main()
