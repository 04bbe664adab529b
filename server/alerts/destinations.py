"""Render one notification (server.alerts.message) for its destination and send it: one JSON
POST with httpx, or one e-mail with smtplib.

    webhook    the message itself, signed the Standard Webhooks way: headers webhook-id (the
               notification's id, the same on every retry), webhook-timestamp (Unix seconds)
               and webhook-signature (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`)
               with the `whsec_...` secret in the environment variable `secret_env`; without
               `secret_env` it is sent unsigned (docs/alerts.md)
    slack      an incoming-webhook message: {"text", "blocks"}
    teams      a Teams workflow ("when a Teams webhook request is received"): a message with
               one Adaptive Card attachment
    pagerduty  Events API v2 (`url`, default DEFAULT_PAGERDUTY_URL): trigger on firing,
               escalation, de-escalation and no data, resolve on resolve, one dedup_key per
               alert episode; re-notify is left to PagerDuty's own escalation policy
    email      one plain-text message through the SMTP server `smtp` (host:port, default
               localhost:25; no login or TLS: point it at a relay)

Errors say whether a retry can mend them (`DeliveryError.retryable`): connection errors,
timeouts, 408, 425, 429 and 5xx can; a missing secret, a 4xx or a redirect cannot.
"""

from __future__ import annotations

import hashlib
import os
import smtplib
import socket
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from spanlake.analytics.budgets.definition import Destination
from spanlake.server.alerts.message import TITLES, fmt
from spanlake.server.alerts.store import Delivery

DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
DEFAULT_SMTP = "localhost:25"
USER_AGENT = "spanlake-alerts"
_RETRYABLE_STATUS = {408, 425, 429}
_PD_SEVERITY = {"critical": "critical", "warning": "warning"}


class DeliveryError(Exception):
    """A send that did not succeed; `retryable` when trying again later may succeed,
    `retry_after` the receiver's Retry-After in seconds, when it gave one."""

    def __init__(self, message: str, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable, self.retry_after = retryable, retry_after


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for a connection and for each read or write of one send."""

    connect: float = 5.0
    read: float = 15.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.read, pool=self.connect)


def wants(kind: str, event: str) -> bool:
    """Whether a destination of `kind` is sent the notification of `event` (PagerDuty re-notifies
    on its own, by its escalation policy)."""
    return not (kind == "pagerduty" and event == "renotify")


def send(dest: Destination, d: Delivery, client: httpx.Client, timeouts: Timeouts, now: datetime) -> None:
    """Deliver `d` to `dest` once; DeliveryError when it was not accepted."""
    if dest.type == "email":
        _send_email(dest, d, timeouts)
        return
    if dest.type == "webhook":
        url, body, headers = webhook_request(dest, d, now)
    elif dest.type == "slack":
        url, body, headers = _json_request(dest.url, slack_body(d.message))
    elif dest.type == "teams":
        url, body, headers = _json_request(dest.url, teams_body(d.message))
    elif dest.type == "pagerduty":
        url, body, headers = _json_request(dest.url or DEFAULT_PAGERDUTY_URL, pagerduty_body(dest, d.message))
    else:
        raise DeliveryError(f"unknown destination type {dest.type!r}", retryable=False)
    _post(client, url, body, headers, timeouts)


def webhook_request(dest: Destination, d: Delivery, now: datetime) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of a generic webhook, signed when the destination names a secret."""
    body = orjson.dumps(d.message)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": d.id,
        "webhook-timestamp": str(int(now.timestamp())),
    }
    if dest.secret_env:
        secret = os.environ.get(dest.secret_env, "")
        if not secret:
            raise DeliveryError(
                f"secret_env names {dest.secret_env}, which is not set (a Standard Webhooks secret, whsec_...)",
                retryable=False,
            )
        try:
            headers["webhook-signature"] = Webhook(secret).sign(d.id, now, body.decode())
        except Exception as e:  # a secret that is not base64: the library's own error types
            raise DeliveryError(f"{dest.secret_env} is not a Standard Webhooks secret (whsec_<base64>): {e}",
                                retryable=False) from None  # fmt: skip
    assert dest.url is not None
    return dest.url, body, headers


def facts(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs every human-readable rendering shows."""
    m = message["data"]
    b = m["budget"]
    unit = b["unit"]
    scope = ", ".join(f"{k}={v}" for k, v in b["scope"].items() if k != "attributes")
    scope += "".join(f", {k}={v}" for k, v in b["scope"].get("attributes", {}).items())
    out = [
        ("Budget", f"{b['name']} (project {b['project']})"),
        ("Metric", b["metric"] + ("" if b["step"] == "task" else f" ({b['step']})")),
        ("Figure", f"{fmt(m['figure'], unit)} ({m['samples']} samples)" if m["figure"] is not None else "no data"),
    ]
    t = m["threshold"]
    if t["value"] is not None:
        out.append(("Threshold", f"{t['crossed']} {fmt(t['value'], unit)}"))
    out.append(("Window", f"{b['window']}: {m['window']['since']} to {m['window']['until']}"))
    if m["baseline"] is not None:
        base = m["baseline"]
        out.append(("Baseline", f"{base['text']}: {fmt(base['figure'], unit)}"))
    state = m["state"] + (f" ({m['severity']})" if m["severity"] else "")
    out.append(("State", state))
    if m["firing_since"]:
        out.append(("Firing since", m["firing_since"]))
    if scope.strip(", "):
        out.append(("Scope", scope.strip(", ")))
    out.append(("At", m["at"]))
    return out


def title(message: dict[str, Any]) -> str:
    m = message["data"]
    head = TITLES.get(m["event"], m["event"].upper())
    sev = m["severity"]
    if m["event"] in ("escalated", "deescalated"):
        head += f" to {sev}"
    elif sev and m["event"] not in ("resolved", "removed"):
        head += f" {sev}"
    return f"{head}: {m['budget']['key']}"


def slack_body(message: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (notifications, fallback) and Block Kit blocks."""
    m = message["data"]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title(message)[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack(m["summary"])[:3000]}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_slack(v)}"[:2000]} for k, v in facts(message)[:10]],
        },
    ]
    worst = m["worst_traces"]
    if worst:
        items = [f"<{w['url']}|{_slack(w['trace_id'])}>" if w["url"] else f"`{_slack(w['trace_id'])}`" for w in worst]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Worst traces*\n" + "\n".join(items)}})
    if m["links"]["traces"]:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open the traces"}}
        blocks.append({"type": "actions", "elements": [button | {"url": m["links"]["traces"]}]})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"spanlake · alert {m['alert_id']}"}]})
    return {"text": m["summary"], "blocks": blocks}


def teams_body(message: dict[str, Any]) -> dict[str, Any]:
    """A message with one Adaptive Card, as a Teams workflow webhook takes it."""
    m = message["data"]
    color = {"critical": "Attention", "warning": "Warning"}.get(m["severity"] or "", "Good")
    if m["event"] in ("resolved", "removed"):
        color = "Good"
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": title(message), "weight": "Bolder", "size": "Medium", "color": color,
         "wrap": True},
        {"type": "TextBlock", "text": m["summary"], "wrap": True},
        {"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in facts(message)]},
    ]  # fmt: skip
    worst = m["worst_traces"]
    if worst:
        items = [f"[{w['trace_id']}]({w['url']})" if w["url"] else w["trace_id"] for w in worst]
        body.append({"type": "TextBlock", "text": "Worst traces: " + ", ".join(items), "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if m["links"]["traces"]:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open the traces", "url": m["links"]["traces"]}]
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
    return {"type": "message", "attachments": [attachment]}


def dedup_key(alert_id: str) -> str:
    """PagerDuty's dedup_key of an alert episode (at most 255 characters)."""
    key = f"spanlake/{alert_id}"
    return key if len(key) <= 255 else "spanlake/" + hashlib.sha256(alert_id.encode()).hexdigest()


def pagerduty_body(dest: Destination, message: dict[str, Any]) -> dict[str, Any]:
    """An Events API v2 event: trigger (or resolve) of the episode's dedup_key."""
    routing_key = os.environ.get(dest.routing_key_env or "", "")
    if not routing_key:
        raise DeliveryError(f"routing_key_env names {dest.routing_key_env}, which is not set", retryable=False)
    m = message["data"]
    event: dict[str, Any] = {"routing_key": routing_key, "dedup_key": dedup_key(m["alert_id"] or m["budget"]["key"])}
    if m["event"] in ("resolved", "removed"):
        return event | {"event_action": "resolve"}
    severity = "info" if m["event"] == "no_data" else _PD_SEVERITY.get(m["severity"] or "", "warning")
    b = m["budget"]
    links = []
    if m["links"]["traces"]:
        links.append({"href": m["links"]["traces"], "text": "Traces of the window, worst first"})
    links += [{"href": w["url"], "text": f"Trace {w['trace_id']}"} for w in m["worst_traces"] if w["url"]]
    details = {k: v for k, v in facts(message)}
    details["worst_traces"] = [w["trace_id"] for w in m["worst_traces"]]
    return event | {
        "event_action": "trigger",
        "payload": {
            "summary": m["summary"][:1024],
            "source": f"spanlake/{b['project']}",
            "severity": severity,
            "timestamp": m["at"],
            "component": b["name"],
            "group": b["project"],
            "class": b["metric"],
            "custom_details": details,
        },
        "links": links,
        "client": "spanlake",
    }


def email_message(dest: Destination, d: Delivery) -> EmailMessage:
    """The plain-text e-mail of a notification; its Message-ID carries the notification's id."""
    m = d.message["data"]
    msg = EmailMessage()
    msg["Subject"] = " ".join(m["summary"].split())[:250]
    msg["From"] = dest.sender or f"spanlake@{socket.gethostname() or 'localhost'}"
    msg["To"] = ", ".join(dest.to)
    msg["Date"] = format_datetime(datetime.fromisoformat(m["at"]))
    msg["Message-ID"] = f"<{d.id}@spanlake>"
    lines = [m["summary"], ""]
    width = max(len(k) for k, _ in facts(d.message))
    lines += [f"{k:<{width}}  {v}" for k, v in facts(d.message)]
    if m["reason"]:
        lines += ["", f"Why: {m['reason']}"]
    if m["links"]["traces"]:
        lines += ["", f"Traces: {m['links']['traces']}"]
    if m["worst_traces"]:
        lines += ["", "Worst traces:"]
        lines += [f"  {w['trace_id']}" + (f"  {w['url']}" if w["url"] else "") for w in m["worst_traces"]]
    lines += ["", f"spanlake alert {m['alert_id']}"]
    msg.set_content("\n".join(lines) + "\n")
    return msg


def _send_email(dest: Destination, d: Delivery, timeouts: Timeouts) -> None:
    host, _, port = (dest.smtp or DEFAULT_SMTP).rpartition(":")
    msg = email_message(dest, d)
    try:
        with smtplib.SMTP(host, int(port), timeout=timeouts.connect + timeouts.read) as smtp:
            smtp.send_message(msg)
    except smtplib.SMTPResponseException as e:
        text = e.smtp_error.decode(errors="replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
        where = dest.smtp or DEFAULT_SMTP
        raise DeliveryError(f"SMTP {where} answered {e.smtp_code} {text}", 400 <= e.smtp_code < 500) from None
    except smtplib.SMTPRecipientsRefused as e:
        raise DeliveryError(f"SMTP refused the recipients: {e.recipients}", retryable=False) from None
    except (OSError, smtplib.SMTPException) as e:  # refused, timed out, disconnected
        raise DeliveryError(f"SMTP {dest.smtp or DEFAULT_SMTP}: {type(e).__name__}: {e}", retryable=True) from None


def _json_request(url: str | None, payload: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    assert url is not None  # definition.destination_from_dict requires it
    return url, orjson.dumps(payload), {"content-type": "application/json", "user-agent": USER_AGENT}


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> None:
    try:
        r = client.post(url, content=body, headers=headers, timeout=timeouts.httpx())
    except httpx.TimeoutException as e:
        kind = {httpx.ConnectTimeout: "connecting", httpx.WriteTimeout: "sending"}.get(type(e), "awaiting the answer")
        limit = timeouts.connect if isinstance(e, httpx.ConnectTimeout) else timeouts.read
        raise DeliveryError(f"timed out {kind} ({limit:g} s) at {_host(url)}", retryable=True) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as e:
        raise DeliveryError(f"not a URL to send to: {e}", retryable=False) from None
    except httpx.TransportError as e:
        raise DeliveryError(f"{type(e).__name__} at {_host(url)}: {e}", retryable=True) from None
    if 200 <= r.status_code < 300:
        return
    text = " ".join(r.text[:200].split())
    retryable = r.status_code >= 500 or r.status_code in _RETRYABLE_STATUS
    hint = ""
    if 300 <= r.status_code < 400:
        hint = f" (a redirect to {r.headers.get('location')}: point the destination at the final URL)"
    raise DeliveryError(f"HTTP {r.status_code} from {_host(url)}: {text}{hint}", retryable, _retry_after(r))


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return max(0.0, float(r.headers.get("retry-after", "")))
    except ValueError:
        return None


def _host(url: str) -> str:
    """The URL without its path and query (which may hold a token, as Slack's do)."""
    u = httpx.URL(url)
    return f"{u.scheme}://{u.host}" + (f":{u.port}" if u.port else "")


def _slack(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
