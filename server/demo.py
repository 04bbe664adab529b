"""The first-start demo of `spanlake up`: with an empty local lake, run the demo app once in a
background process (`python -m spanlake.cli.demo --quiet`), into project `demo`, logging to
`<data-dir>/demo.log`; the child is reaped as soon as it ends and stopped with the server.

It also declares what a team would for the demo's support assistant, when the data directory
has no such file yet: budgets (`budgets.toml`) and evaluators with a rule that runs them
(`evaluators.toml`). The groundedness judge calls the fake OpenAI-compatible server that the demo
child keeps serving on a loopback port chosen here (`--judge-port`) until the server stops, so
the judge's base_url is right from the first start and the demo's traces get judged once they
are complete (after the file's quiet period).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from spanlake.storage.layout import DataDir

NO_DEMO_ENV = "SPANLAKE_NO_DEMO"
PARENT_ENV = "SPANLAKE_DEMO_PARENT"
LOG_NAME = "demo.log"  # in the data directory; its presence also means "the demo ran once"
BUDGETS_NAME = "budgets.toml"
# Written on the first start when the data directory has no budgets file: what a team would
# declare for the demo's support assistant. Its success rate (about 70 % with the default
# seed) is below the first budget's critical threshold, so a new user sees a firing budget.
DEMO_BUDGETS = """\
# Budgets of the demo support assistant (project demo), written by the first `spanlake up`.
# The server evaluates them every minute; see them on the dashboard's Budgets page and with
# `spanlake budgets check`. Edit this file or use `spanlake budgets add/remove` (docs/budgets.md).

[[budget]]
name = "answer-ticket-success"
project = "demo"
metric = "success_rate"
task = "answer_ticket"
window = "24h"
warning = 0.9
critical = 0.8
min_samples = 20
description = "Nine tickets in ten answered without a human."

[[budget]]
name = "answer-ticket-p95"
project = "demo"
metric = "p95_latency"
task = "answer_ticket"
window = "24h"
warning = 3000
critical = 5000
min_samples = 20

[[budget]]
name = "cost-per-successful-ticket"
project = "demo"
metric = "cost_per_successful_task"
task = "answer_ticket"
window = "24h"
warning = 0.002
critical = 0.005
min_samples = 20

[[budget]]
name = "daily-spend"
project = "demo"
metric = "spend"
window = "24h"
warning = 30
critical = 40
"""
EVALUATORS_NAME = "evaluators.toml"
JUDGE_URL = "{judge_url}"  # replaced by the judge's base_url (the template's own braces stay as they are)
# Written on the first start when the data directory has no evaluators file. The rule judges every
# `answer_ticket` trace; the fake judge (demo/fake_openai.py, model judge-grounded) passes an
# answer when at least half of its words appear in the retrieved documents, so it fails some
# answers the demo's users liked and passes some they did not: disagreements on the Evaluators page.
DEMO_EVALUATORS = """\
# Evaluators of the demo support assistant (project demo), written by the first `spanlake up`.
# The server runs the rule below on the demo's traces once no span arrived for `quiet_period`;
# see the results on the dashboard's Evaluators page and on each trace (docs/evaluators.md).
# The groundedness judge is the demo's fake OpenAI-compatible server (model judge-grounded), served
# on a loopback port by the `spanlake up` that ran the demo, as long as that one runs.

[settings]
quiet_period = "10s"

[[evaluator]]
name = "groundedness"
project = "demo"
kind = "llm_judge"
description = "Is the answer supported by the help-center articles it retrieved?"
base_url = "{judge_url}"
model = "judge-grounded"
template = \"\"\"Is the answer supported by the retrieved documents? Fail it when it says what they do not.
Question: {input}
Documents:
{documents}
Answer:
{output}\"\"\"
timeout_s = 10
retries = 2
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.6

[[evaluator]]
name = "reply_json"
project = "demo"
kind = "json_schema"
description = "The reply is JSON with a non-empty answer (the app's Reply schema)."
schema = { type = "object", required = ["answer"], properties = { answer = { type = "string", minLength = 1 } } }

[[rule]]
name = "judge-answers"
project = "demo"
evaluators = ["groundedness", "reply_json"]
sample = 1.0
target = "trace"
task = "answer_ticket"
queue_when = "fail"
"""
REAP_POLL_S = 0.5


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


def free_port() -> int:
    """A loopback port free now (the demo child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FirstStartDemo:
    """`spanlake up`'s demo: decided before the collector starts (it may replay its log into the
    lake), started once the collector listens, stopped with it. Never raises."""

    def __init__(self, data_dir: Path, lake: str | None, disabled: bool, say: Callable[[str], None] = print) -> None:
        self.log = Path(data_dir).expanduser().resolve() / LOG_NAME
        self.process: subprocess.Popen[bytes] | None = None
        self.say = say
        self._stopping = threading.Event()
        self._reaper: threading.Thread | None = None
        try:
            self.wanted = not disabled and not self.log.exists() and lake_is_empty(data_dir, lake)
        except Exception:
            self.wanted = False

    def start(self, http_endpoint: str, dashboard_url: str | None = None) -> None:
        """Run the demo in the background against `http_endpoint`, and say so."""
        if not self.wanted:
            return
        if missing := missing_packages():
            self.say(f"demo: not run on this first start (it needs: {install_hint(missing)})")
            return
        self.write_budgets()
        endpoint = http_endpoint.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//127.0.0.1:")
        cmd = [sys.executable, "-m", "spanlake.cli.demo", "--endpoint", endpoint, "--quiet"]
        judge_port = free_port()
        if self.write_evaluators(f"http://127.0.0.1:{judge_port}/v1"):
            cmd += ["--judge-port", str(judge_port)]  # the child serves the judge until it is stopped
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
            self.say(f"demo: could not start it ({e})")
            return
        self._reaper = threading.Thread(target=self._reap, name="spanlake-demo-reaper", daemon=True)
        self._reaper.start()
        self.say(
            "demo: the lake was empty, so a demo support assistant is sending example traces into project "
            f"`demo` in the background (log: {self.log}; disable with --no-demo or {NO_DEMO_ENV}=1)"
        )

    def write_budgets(self) -> None:
        """Declare the demo's budgets, unless the data directory has a budgets file already."""
        self._write_new(BUDGETS_NAME, DEMO_BUDGETS, "budgets")

    def write_evaluators(self, judge_url: str) -> bool:
        """Declare the demo's evaluators and rule (the judge at `judge_url`), unless the data
        directory has an evaluators file already; whether they were written."""
        return self._write_new(EVALUATORS_NAME, DEMO_EVALUATORS.replace(JUDGE_URL, judge_url), "evaluators")

    def _write_new(self, name: str, text: str, what: str) -> bool:
        path = self.log.parent / name
        tmp = path.with_name(f".{name}.demo")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(text, encoding="utf-8")
            os.link(tmp, path)  # whole or not at all, and never over a file that appeared meanwhile
            return True
        except FileExistsError:
            return False
        except OSError as e:
            self.say(f"demo: could not write its {what} ({e})")
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def _reap(self) -> None:
        """Collect the child's exit status when it ends, so it never lingers as a zombie."""
        while self.process is not None and self.process.poll() is None:
            if self._stopping.wait(REAP_POLL_S):
                return

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the demo if it still runs."""
        self._stopping.set()
        if self._reaper is not None:
            self._reaper.join()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
