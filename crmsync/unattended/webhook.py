"""The built-in notifier: POST each notification as JSON to the ``[[notify.webhooks]]``.

Templates (``template = ...``):

* ``dingtalk``: a DingTalk group robot, ``{"msgtype": "text", "text": {"content": ...}}``. With
  ``secret`` (the robot's 加签 secret, ``SEC...``) the URL gets ``timestamp`` (ms) and ``sign`` =
  urlencode(base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret))), as DingTalk's
  custom-robot documentation describes. DingTalk answers HTTP 200 with ``errcode`` != 0 on
  refusal; that is a failure. A robot secured by keywords needs one in the text: every message
  starts with "crmsync".
* ``slack``: a Slack incoming webhook, ``{"text": ...}``.
* ``generic``: the notification itself (:meth:`Notification.as_dict`).

Each POST has a timeout; connection errors, 429 and 5xx are retried (tenacity, exponential
backoff). Messages about failures never contain the URL: webhook URLs carry tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from crmsync.config import Config, WebhookConfig
from crmsync.errors import CrmsyncError
from crmsync.hookspecs import Notification, hookimpl

RETRY_WAIT = 1.0  # seconds before the first retry (doubling, at most MAX_WAIT); tests set 0
MAX_WAIT = 10.0


class WebhookError(CrmsyncError):
    """A webhook could not be delivered (named by its ``name``, never by its URL)."""


class _Retryable(WebhookError):
    pass


def dingtalk_body(event: Notification) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": event.text}}


def slack_body(event: Notification) -> dict[str, Any]:
    return {"text": event.text}


def generic_body(event: Notification) -> dict[str, Any]:
    return event.as_dict()


TEMPLATES: dict[str, Callable[[Notification], dict[str, Any]]] = {
    "dingtalk": dingtalk_body,
    "slack": slack_body,
    "generic": generic_body,
}


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature for ``timestamp_ms``, URL-encoded."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, digestmod=hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str, timestamp_ms: int | None = None) -> str:
    timestamp_ms = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    joiner = "&" if urllib.parse.urlsplit(url).query else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


def deliver(hook: WebhookConfig, event: Notification) -> None:
    """POST ``event`` to one webhook, retrying what may pass on a second try."""
    body = TEMPLATES[hook.template](event)
    where = f"webhook {hook.name!r}"

    @retry(
        stop=stop_after_attempt(hook.retries + 1),
        wait=wait_exponential(multiplier=RETRY_WAIT, max=MAX_WAIT),
        retry=retry_if_exception_type(_Retryable),
        reraise=True,
    )
    def post() -> None:
        url = hook.url.reveal()  # at each attempt: a DingTalk signature is valid for an hour
        if hook.template == "dingtalk" and hook.secret is not None:
            url = signed_url(url, hook.secret.reveal())
        try:
            response = requests.post(url, json=body, timeout=hook.timeout)
        except requests.RequestException as exc:  # its text names the URL: not shown
            raise _Retryable(f"{where}: {type(exc).__name__}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Retryable(f"{where}: HTTP {status}")
        if status >= 400:
            raise WebhookError(f"{where}: HTTP {status}")
        if hook.template == "dingtalk":
            _check_dingtalk(response, where)

    try:
        post()
    except _Retryable as exc:
        raise WebhookError(f"{exc} (after {hook.retries + 1} attempts)") from None


def _check_dingtalk(response: requests.Response, where: str) -> None:
    try:
        answer = response.json()
    except ValueError:
        return  # a proxy or test server with no JSON: HTTP 2xx is all there is to go on
    code = answer.get("errcode", 0) if isinstance(answer, dict) else 0
    if code in (0, None):
        return
    message = str(answer.get("errmsg", ""))[:100]
    if code == 130101:  # "send too fast": the robot's rate limit
        raise _Retryable(f"{where}: DingTalk errcode {code} {message}")
    raise WebhookError(f"{where}: DingTalk errcode {code} {message}")


@hookimpl
def crmsync_notify(notification: Notification, config: Config) -> str | None:
    """Send to each webhook subscribed to this kind of event; raise if any could not be sent."""
    hooks = [h for h in config.notify.webhooks if notification.kind in h.on]
    if not hooks:
        return None
    sent, problems = [], []
    for hook in hooks:
        try:
            deliver(hook, notification)
        except CrmsyncError as exc:  # WebhookError, or a secret reference that is not set
            problems.append(str(exc))
        else:
            sent.append(hook.name)
    if problems:
        done = f" (sent to {', '.join(sent)})" if sent else ""
        raise WebhookError("; ".join(problems) + done)
    return f"sent to {', '.join(sent)}"
