"""`spanlake demo`: a demo support assistant sending realistic traces to a running spanlake.

Also the first-start hook of `spanlake up`: with an empty lake, `FirstStartDemo` runs the
demo once in a background process (`python -m spanlake.cli.demo --quiet`), into project
`demo`, logging to `<data-dir>/demo.log`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import click

from spanlake.storage.layout import DataDir

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
DEFAULT_DASHBOARD = "http://127.0.0.1:8501"
NO_DEMO_ENV = "SPANLAKE_NO_DEMO"
PARENT_ENV = "SPANLAKE_DEMO_PARENT"
LOG_NAME = "demo.log"  # in the data directory; its presence also means "the demo ran once"

no_demo_option = click.option(
    "--no-demo",
    is_flag=True,
    envvar=NO_DEMO_ENV,
    show_envvar=True,
    help="On a first start with an empty lake, do not run the demo app into project `demo`.",
)


# What the demo app needs beyond spanlake itself: the model client and its real auto-instrumentation.
REQUIRED = {
    "openai": "openai",
    "opentelemetry.instrumentation.openai_v2": "opentelemetry-instrumentation-openai-v2",
    # openai-v2 2.4b0 fails at instrument time with opentelemetry-util-genai 1.2b0 and later
    "opentelemetry.util.genai.instruments": "opentelemetry-util-genai<1.0",
}


def missing_packages() -> list[str]:
    """The distributions the demo needs that are not installed."""
    out = []
    for module, dist in REQUIRED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(dist)
    return out


def install_hint(missing: list[str]) -> str:
    """The pip command that installs what the demo lacks (the `demo` extra holds the same)."""
    return "pip install " + " ".join(f"'{d}'" if "<" in d else d for d in missing) + "  (or: pip install '.[demo]')"


def probe(endpoint: str, timeout_s: float = 3.0) -> str | None:
    """None when a spanlake collector answers at `endpoint`, else why not."""
    try:
        with urllib.request.urlopen(f"{endpoint.rstrip('/')}/health", timeout=timeout_s) as r:
            return None if r.status == 200 else f"HTTP {r.status}"
    except Exception as e:
        return str(getattr(e, "reason", None) or e)


def next_steps(summary: Any, dashboard_url: str) -> list[str]:
    """Lines telling a newcomer what to look at, with trace ids from this run."""
    failed = next((r for r in summary.results if r.outcome == "failure" and r.escalations), None)
    errored = next((r for r in summary.results if r.outcome == "error"), None)
    running = dashboard_url.startswith("http")
    if running:
        lines = [f"  dashboard      {dashboard_url}  (Traces, Sessions, Overview, Reports: pick project demo)"]
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


def print_summary(summary: Any, dashboard_url: str) -> None:
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
    for line in next_steps(summary, dashboard_url):
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
def demo(
    endpoint: str,
    tickets: int,
    seed: int,
    concurrency: int,
    time_scale: float,
    dashboard_url: str,
    quiet: bool,
    as_json: bool,
) -> None:
    """Run a demo support assistant against a running spanlake, into project `demo`.

    \b
    The app is built on spanlake-sdk and the real openai-v2 auto-instrumentation, and talks to a
    fake OpenAI-compatible server started in this process (no network, no API key). It
    retrieves help-center articles, calls tools, asks for JSON and validates it, falls back to a
    bigger model, applies policies, escalates to people, and its users leave feedback; two
    prompt versions (v1, v2) run side by side. Start spanlake first: `spanlake up`.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from spanlake.demo.runner import run_demo

    endpoint = endpoint.rstrip("/")
    if missing := missing_packages():
        raise click.ClickException(f"the demo needs {' and '.join(missing)}: {install_hint(missing)}")
    if (why := probe(endpoint)) is not None:
        raise click.ClickException(f"no spanlake at {endpoint} ({why}); start it with `spanlake up` or pass --endpoint")
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
    print_summary(summary, dashboard_url)
    if as_json:
        for r in summary.results:
            row = {"index": r.ticket.index, "trace_id": r.trace_id, "outcome": r.outcome, "reason": r.reason,
                   "prompt_version": r.ticket.prompt_version, "intent": r.ticket.intent, "documents": r.documents,
                   "failed_validations": r.failed_validations, "fallbacks": r.fallbacks,
                   "escalations": r.escalations}  # fmt: skip
            click.echo(json.dumps(row))
        for f in summary.feedback:
            click.echo(json.dumps({"feedback": f.__dict__}))


def lake_is_empty(data_dir: Path, lake: str | None) -> bool:
    """True when a local lake has no span files and the write-ahead log holds nothing to replay.
    A lake on object storage is shared (a deployment, not a first try): never "empty" here."""
    dd = DataDir(data_dir, lake)
    if dd.is_remote or (dd.wal.is_dir() and any(dd.wal.iterdir())):
        return False
    try:
        return not dd.store.list_files("spans", ".parquet")
    except Exception:
        return False  # cannot tell (e.g. object storage unreachable): do not run


class FirstStartDemo:
    """`spanlake up`'s demo: decided before the collector starts (it may replay its log into the
    lake), started once the collector listens, stopped with it. Never raises."""

    def __init__(self, data_dir: Path, lake: str | None, disabled: bool) -> None:
        self.log = Path(data_dir).expanduser().resolve() / LOG_NAME
        self.process: subprocess.Popen[bytes] | None = None
        try:
            self.wanted = not disabled and not self.log.exists() and lake_is_empty(data_dir, lake)
        except Exception:
            self.wanted = False

    def start(self, http_endpoint: str, dashboard_url: str | None = None) -> None:
        """Run the demo in the background against `http_endpoint`, and say so."""
        if not self.wanted:
            return
        if missing := missing_packages():
            click.echo(f"demo: not run on this first start (it needs: {install_hint(missing)})")
            return
        endpoint = http_endpoint.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//127.0.0.1:")
        cmd = [sys.executable, "-m", "spanlake.cli.demo", "--endpoint", endpoint, "--quiet"]
        if dashboard_url is not None:  # not a URL when `spanlake up` runs without one
            cmd += ["--dashboard-url", dashboard_url if dashboard_url.startswith("http") else "off"]
        try:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "ab") as out:
                env = {**os.environ, PARENT_ENV: str(os.getpid())}
                self.process = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
        except Exception as e:
            click.echo(f"demo: could not start it ({e})")
            return
        click.echo(
            "demo: the lake was empty, so a demo support assistant is sending example traces into project "
            f"`demo` in the background (log: {self.log}; disable with --no-demo or {NO_DEMO_ENV}=1)"
        )

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the demo if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _child_main() -> None:  # pragma: no cover - runs in the background child
    """Exit with the parent (`spanlake up`) on Linux, then run the command."""
    if sys.platform.startswith("linux") and os.environ.get(PARENT_ENV):
        with contextlib.suppress(Exception):
            import ctypes

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if str(os.getppid()) != os.environ[PARENT_ENV]:
            sys.exit(0)
    demo(prog_name="spanlake demo")


if __name__ == "__main__":
    _child_main()
