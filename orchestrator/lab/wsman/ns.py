"""Namespaces, actions and resource URIs of WS-Management as Windows speaks it (MS-WSMV; see docs/evidence.md)."""

from __future__ import annotations

S = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
WSMV = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd"
WSMANFAULT = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"
RSP = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
WST = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
WSEN = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
WSE = "http://schemas.xmlsoap.org/ws/2004/08/eventing"
CFG = "http://schemas.microsoft.com/wbem/wsman/1/config"
CIM = "http://schemas.dmtf.org/wbem/wscim/1/common"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
WMIERROR = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/MSFT_WmiError"
CIMBINDING = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
XML = "http://www.w3.org/XML/1998/namespace"

ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

# wsa:Action values (requests). Responses are the request action + "Response".
ACT_GET = f"{WST}/Get"
ACT_PUT = f"{WST}/Put"
ACT_CREATE = f"{WST}/Create"
ACT_DELETE = f"{WST}/Delete"
ACT_ENUMERATE = f"{WSEN}/Enumerate"
ACT_PULL = f"{WSEN}/Pull"
ACT_RELEASE = f"{WSEN}/Release"
ACT_COMMAND = f"{RSP}/Command"
ACT_RECEIVE = f"{RSP}/Receive"
ACT_SEND = f"{RSP}/Send"
ACT_SIGNAL = f"{RSP}/Signal"

# Fault actions seen in real recordings.
FAULT_WSMAN = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
FAULT_ADDRESSING = f"{WSA}/fault"
FAULT_ENUMERATION = f"{WSEN}/fault"

# Resource URIs.
URI_SHELL_CMD = f"{RSP}/cmd"
URI_SHELL = RSP
URI_CONFIG = "http://schemas.microsoft.com/wbem/wsman/1/config"
URI_WMI = "http://schemas.microsoft.com/wbem/wsman/1/wmi/"
DIALECT_WQL = "http://schemas.microsoft.com/wbem/wsman/1/WQL"

COMMAND_STATE_DONE = f"{RSP}/CommandState/Done"
COMMAND_STATE_RUNNING = f"{RSP}/CommandState/Running"
FAULT_DETAIL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail"

# Prefix declarations as Windows writes them on the envelope (the sets differ per response type).
_DECL = {
    "s": S,
    "a": WSA,
    "x": WST,
    "e": WSE,
    "n": WSEN,
    "w": WSMAN,
    "rsp": RSP,
    "p": WSMV,
}


def declarations(*prefixes: str) -> str:
    return "".join(f' xmlns:{p}="{_DECL[p]}"' for p in prefixes)


def q(ns: str, local: str) -> str:
    """Clark notation ``{ns}local`` as ElementTree uses it."""
    return f"{{{ns}}}{local}"
