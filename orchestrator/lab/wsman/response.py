"""Response envelopes in the exact shape Windows sends (samples/01..07): ``xml:lang`` and the prefix
declarations on ``s:Envelope``; a header of Action (request action + "Response"), a fresh upper-case
MessageID, ``a:To`` anonymous and RelatesTo echoing the request's MessageID."""

from __future__ import annotations

from orchestrator.lab.wsman import ns
from orchestrator.lab.wsman.xmltext import esc, new_message_id

# Prefix sets per response kind, copied from the recordings.
DECL_CREATE = ns.declarations("s", "a", "x", "w", "rsp", "p")
DECL_SHELL = ns.declarations("s", "a", "x", "w", "rsp", "p")  # Command, Signal, Send
DECL_RECEIVE = ns.declarations("s", "a", "w", "rsp", "p")
DECL_PLAIN = ns.declarations("s", "a", "w", "p")  # Delete
DECL_TRANSFER = ns.declarations("s", "a", "x", "w", "p")  # Get
DECL_ENUM = ns.declarations("s", "a", "n", "w", "p")
DECL_FAULT = ns.declarations("s", "a", "x", "e", "n", "w", "p")


def envelope(action: str, relates_to: str | None, body: str, decl: str = DECL_TRANSFER) -> bytes:
    """A complete SOAP 1.2 envelope as UTF-8 bytes. ``body`` is trusted XML text (already escaped)."""
    relates = f"<a:RelatesTo>{esc(relates_to)}</a:RelatesTo>" if relates_to else ""
    return (
        f'<s:Envelope xml:lang="en-US"{decl}><s:Header><a:Action>{esc(action)}</a:Action>'
        f"<a:MessageID>{new_message_id()}</a:MessageID><a:To>{ns.ANONYMOUS}</a:To>{relates}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def response_action(request_action: str) -> str:
    return request_action + "Response"
