"""The worker's Redis transport: kombu's own, except that one malformed queue entry cannot stop the worker.

kombu's Redis channel pops an entry with BRPOP and decodes and delivers it in one go; an entry that is not
JSON, lacks ``properties``, carries a ``str`` where Celery expects ``bytes`` … raises out of the consumer loop
and Celery stops the whole worker ("Unrecoverable error"). Anyone who can write to the broker could stop every
worker with one ``LPUSH``. This channel checks each popped entry against the shape of a kmsfleet task message
(``is_task_entry``) before handing it on, drops (and logs) what does not fit, and catches what still fails
while it is delivered. Everything else is kombu's code, unchanged.

Used by the worker only (``celery_app.make_app`` sets ``broker_transport`` to ``GuardedTransport``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from orchestrator.distributed.celery_app import TASK_NAME

log = logging.getLogger("kmsfleet.worker")
MAX_ENTRY = 16 * 1024 * 1024


def is_task_entry(raw: Any) -> str | None:
    """None when ``raw`` (the decoded queue entry) has the shape of a kmsfleet task message; else why not."""
    if not isinstance(raw, dict):
        return "not a JSON object"
    return _envelope_problem(raw) or _body_problem(raw.get("body"))


def _envelope_problem(raw: dict[str, Any]) -> str | None:
    """What is wrong with the entry's headers and properties (the first rule it breaks), or None."""
    headers, props = raw.get("headers"), raw.get("properties")
    if not isinstance(headers, dict) or not isinstance(props, dict):
        return "no headers or properties"
    rules = (
        (headers.get("task") == TASK_NAME and isinstance(headers.get("id"), str), f"not a {TASK_NAME} task"),
        (raw.get("content-type") == "application/json" and raw.get("content-encoding") == "utf-8", "not JSON content"),
        (
            props.get("body_encoding") == "base64" and isinstance(props.get("delivery_tag"), str),
            "no base64 body or delivery tag",
        ),
        (isinstance(props.get("delivery_info"), dict), "no delivery info"),
    )
    return next((why for ok, why in rules if not ok), None)


def _body_problem(body: Any) -> str | None:
    """What is wrong with the entry's body (base64 JSON ``[[batch], {}, {…}]``), or None."""
    if not isinstance(body, str):
        return "no body"
    try:
        decoded = json.loads(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        return "a body that is not base64 JSON"
    if not (isinstance(decoded, list) and len(decoded) == 3 and isinstance(decoded[0], list)):
        return "a body that is not [args, kwargs, embed]"
    if len(decoded[0]) != 1 or decoded[1] != {} or not isinstance(decoded[2], dict):
        return "arguments other than one batch"
    return None


class GuardedChannel(kombu_redis.Channel):
    def _brpop_read(self, **options: Any) -> bool:
        chan: Any = self  # kombu's channel is untyped
        try:
            try:
                dest__item = chan.client.parse_response(chan.client.connection, "BRPOP", **options)
            except chan.connection_errors:
                chan.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(chan.sep, 1)[0]
            chan._queue_cycle.rotate(dest)
            why = "larger than 16 MiB" if len(item) > MAX_ENTRY else None
            raw: Any = None
            if why is None:
                try:
                    raw = loads(bytes_to_str(item))
                except (ValueError, TypeError, UnicodeDecodeError):
                    why = "not JSON"
            why = why or is_task_entry(raw)
            if why is not None:
                log.warning("dropped a malformed entry of queue %s: %s", dest, why)
                return True
            try:
                chan.connection._deliver(raw, dest)
            except Exception as exc:  # never let one message stop the consumer
                log.warning("dropped an entry of queue %s that could not be delivered: %s", dest, type(exc).__name__)
            return True
        finally:
            chan._in_poll = None
            flush = getattr(chan, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()


class GuardedTransport(kombu_redis.Transport):
    Channel = GuardedChannel
