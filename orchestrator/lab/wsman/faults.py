"""SOAP faults as Windows sends them: HTTP 500, ``s:Fault`` with Code/Subcode/Reason and
``s:Detail/f:WSManFault[@Code (unsigned decimal), @Machine]`` (samples/04b, 05, 08, 09; recorded-winrs).

Each constructor below documents the real fault it copies. Codes are the winerror.h values of the
``ERROR_WSMAN_*`` (facility 0x33) constants.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from orchestrator.lab.provider import WmiError
from orchestrator.lab.wsman import ns
from orchestrator.lab.wsman.response import DECL_FAULT, envelope
from orchestrator.lab.wsman.xmltext import attr, esc

WSMAN_FAULT_NS = ns.WSMANFAULT

# winerror.h, FACILITY_WINRM
E_RESOURCE_NOT_FOUND = 0x80338000  # 2150858752
E_INVALID_MESSAGE_INFORMATION_HEADER = 0x8033800F  # 2150858767
E_MESSAGE_INFORMATION_HEADER_REQUIRED = 0x80338011  # 2150858769
E_INVALID_RESOURCE_URI = 0x8033803B  # 2150858811
E_ACTION_NOT_SUPPORTED = 0x80338013  # 2150858771
E_FILTER_DIALECT_UNAVAILABLE = 0x80338019  # 2150858777
E_CANNOT_PROCESS_FILTER = 0x8033801A  # 2150858778
E_INVALID_ENUMERATION_CONTEXT = 0x8033801B  # 2150858779
E_INVALID_SOAP_BODY = 0x80338027  # 2150858791
E_OPERATION_TIMEDOUT = 0x80338029  # 2150858793
E_SCHEMA_VALIDATION = 0x80338041  # 2150858817
E_INVALID_XML = 0x80338043  # 2150858819
E_MAX_ENVELOPE_SIZE_EXCEEDED = 0x80338048  # 2150858824: the computed response exceeds the request's MaxEnvelopeSize
E_UNEXPECTED_SELECTORS = 0x8033805B  # 2150858843
E_SHELL_QUOTA = 0x803381A5  # 2150859173: ERROR_WSMAN_QUOTA_MAX_SHELLS (MaxShellsPerUser)
E_OPERATIONS_QUOTA = 0x803381A6  # 2150859174: ERROR_WSMAN_QUOTA_MAX_OPERATIONS (MaxConcurrentOperationsPerUser)
E_FAIL = 0x80004005
E_FILE_NOT_FOUND = 0x80070002  # 2147942402
ERROR_ACCESS_DENIED = 5
ERROR_INVALID_PARAMETER = 87

SHELL_PLUGIN = ("Shell cmd plugin", r"%systemroot%\system32\winrscmd.dll")
SHELL_PROVIDER = ("Shell provider", r"%systemroot%\system32\WsmSvc.dll")
WMI_PROVIDER = ("WMI Provider", r"%systemroot%\system32\WsmWmiPl.dll")


@dataclass(eq=False)  # eq=False: an exception keeps its identity hash
class WSManFault(Exception):
    """A fault to send back. ``render`` produces the envelope; the HTTP status is ``http_status`` (500)."""

    subcode: str
    reason: str
    _: KW_ONLY
    code: int | None
    receiver: bool = False
    message: str = ""  # the f:Message text; empty: the reason
    fault_detail: str | None = None
    provider: tuple[str, str] | None = None
    provider_inner: bool = False
    message_xml: str | None = None
    extra_detail: str = ""
    action: str = ns.FAULT_WSMAN
    http_status: int = 500

    def __post_init__(self) -> None:
        super().__init__(self.reason)
        if not self.message:
            self.message = self.reason

    def detail_xml(self, machine: str) -> str:
        parts: list[str] = []
        if self.fault_detail:
            parts.append(f"<w:FaultDetail>{esc(self.fault_detail)}</w:FaultDetail>")
        if self.code is not None:
            if self.message_xml is not None:
                inner = self.message_xml
            elif self.provider is not None:
                name, path = self.provider
                if self.provider_inner:
                    nested = _wsman_fault(self.code, machine, esc(self.message))
                    inner = f'<f:ProviderFault provider="{attr(name)}" path="{attr(path)}">{nested}</f:ProviderFault>'
                else:
                    inner = (
                        f'<f:ProviderFault provider="{attr(name)}" path="{attr(path)}">'
                        f"{esc(self.message)}</f:ProviderFault>"
                    )
            else:
                inner = esc(self.message)
            parts.append(_wsman_fault(self.code, machine, inner))
        parts.append(self.extra_detail)
        return "".join(parts)

    def render(self, machine: str, relates_to: str | None) -> bytes:
        code = "s:Receiver" if self.receiver else "s:Sender"
        body = (
            f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{esc(self.subcode)}</s:Value>"
            f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{esc(self.reason)}</s:Text></s:Reason>'
            f"<s:Detail>{self.detail_xml(machine)}</s:Detail></s:Fault>"
        )
        return envelope(self.action, relates_to, body, DECL_FAULT)


def _wsman_fault(code: int, machine: str, inner_xml: str) -> str:
    return (
        f'<f:WSManFault xmlns:f="{WSMAN_FAULT_NS}" Code="{code & 0xFFFFFFFF}" Machine="{attr(machine)}">'
        f"<f:Message>{inner_xml}</f:Message></f:WSManFault>"
    )


# ---- the catalogue -----------------------------------------------------------------------------------


def timed_out() -> WSManFault:
    """samples/04b: Receive found no output within OperationTimeout."""
    text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
    return WSManFault("w:TimedOut", text, code=E_OPERATION_TIMEDOUT, receiver=True)


def invalid_command_id() -> WSManFault:
    """samples/05: unknown CommandId."""
    return WSManFault(
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors "
        "for the resource. ",
        code=E_UNEXPECTED_SELECTORS,
        fault_detail=f"{ns.FAULT_DETAIL}/UnexpectedSelectors",
        message="The Windows Remote Shell received a request to perform an operation on a command identifier that "
        "does not exist. Either the command has completed execution or the client specified an invalid command "
        "identifier. ",
    )


def invalid_shell_id(shell_id: str) -> WSManFault:
    """test_psrp_is_alive_invalid_selectors (pypsrp): unknown or expired ShellId."""
    return WSManFault(
        "w:InvalidSelectors",
        "The WS-Management service cannot process the request because the request contained invalid selectors "
        "for the resource. ",
        code=E_UNEXPECTED_SELECTORS,
        fault_detail=f"{ns.FAULT_DETAIL}/UnexpectedSelectors",
        provider=SHELL_PROVIDER,
        provider_inner=True,
        message=f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not "
        "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists "
        "on the server. Provide the correct ShellId or create a new shell and retry the operation. ",
    )


def missing_command_id() -> WSManFault:
    """test_winrs_fail_poll_process: Receive without a CommandId → 87 / w:InvalidParameter."""
    return WSManFault(
        "w:InvalidParameter",
        "The parameter is incorrect. ",
        code=ERROR_INVALID_PARAMETER,
        fault_detail=f"{ns.FAULT_DETAIL}/InvalidValue",
        provider=SHELL_PLUGIN,
    )


def file_not_found() -> WSManFault:
    """test_winrs_no_cmd_shell: WINRS_SKIP_CMD_SHELL=True with a program that is not a full path."""
    return WSManFault(
        "w:InternalError",
        "The system cannot find the file specified. ",
        code=E_FILE_NOT_FOUND,
        receiver=True,
        provider=SHELL_PLUGIN,
    )


def shell_error(hresult: int, message: str) -> WSManFault:
    """A command the shell plugin could not start (the shape of test_winrs_no_cmd_shell)."""
    return WSManFault("w:InternalError", message, code=hresult, receiver=True, provider=SHELL_PLUGIN)


def destination_unreachable(resource_uri: str) -> WSManFault:
    """A resource URI no plugin serves (e.g. a PowerShell session configuration that is not registered).

    Windows answers ERROR_WSMAN_INVALID_RESOURCE_URI, 2150858811, with the "was not found in the WS-Management
    catalog" message: pypsrp against an Exchange server asked for an unregistered configuration
    (diyan/pywinrm#273) and for ``winrm/config/listener`` (jborean93/pypsrp#192). The subcode is WS-Addressing's
    ``a:DestinationUnreachable`` as Windows sends it (a Windows fault quoted in microsoft/omi#254, checked by
    omi's parser test in microsoft/omi#279), not a WS-Management one. (0x80338012, 2150858770, is the client
    API's "The client cannot connect to the destination" and never travels in a fault.)
    """
    return WSManFault(
        "a:DestinationUnreachable",
        "The WS-Management service cannot process the request because the resource URI is not valid or the "
        "resource is not registered. ",
        code=E_INVALID_RESOURCE_URI,
        message=f"The WS-Management service cannot process the request. The resource URI ({resource_uri}) was not "
        "found in the WS-Management catalog. The catalog contains the metadata that describes resources, or "
        "logical endpoints. ",
        action=ns.FAULT_ADDRESSING,
    )


def action_not_supported(action: str) -> WSManFault:
    return WSManFault(
        "a:ActionNotSupported",
        "The WS-Management service does not support the action specified in the request. ",
        code=E_ACTION_NOT_SUPPORTED,
        message=f"The action {action} is not supported by the service. ",
        action=ns.FAULT_ADDRESSING,
    )


def invalid_header(detail: str) -> WSManFault:
    """test_psrp_is_alive_other_wsman_error (pypsrp): e.g. OperationTimeout PT-1S."""
    return WSManFault(
        "a:InvalidMessageInformationHeader",
        "The WS-Management service cannot process the request. The request contains one or more invalid SOAP headers. ",
        code=E_INVALID_MESSAGE_INFORMATION_HEADER,
        message=f"The WS-Management service cannot process the request. {detail} ",
        action=ns.FAULT_ADDRESSING,
    )


def header_required(name: str) -> WSManFault:
    return WSManFault(
        "a:MessageInformationHeaderRequired",
        "The WS-Management service cannot process the request. The request does not have all the expected SOAP "
        "headers. ",
        code=E_MESSAGE_INFORMATION_HEADER_REQUIRED,
        message=f"The WS-Management service cannot process the request. The {name} header is missing. ",
        action=ns.FAULT_ADDRESSING,
    )


def invalid_xml(detail: str) -> WSManFault:
    """The request is not well-formed XML or not a SOAP 1.2 envelope (ERROR_WSMAN_INVALID_XML)."""
    return WSManFault(
        "w:SchemaValidationError",
        "The WS-Management service cannot process the request because the XML is invalid. ",
        code=E_INVALID_XML,
        message=f"The WS-Management service cannot process the request because the XML is invalid: {detail} ",
    )


def schema_validation(message: str) -> WSManFault:
    return WSManFault(
        "w:SchemaValidationError",
        "The SOAP XML in the message does not match the corresponding XML schema definition. Change the XML and "
        "retry. ",
        code=E_SCHEMA_VALIDATION,
        message=message,
    )


def encoding_limit(limit: int, computed: int | None = None) -> WSManFault:
    """The computed response does not fit in the MaxEnvelopeSize the client asked for (or the service's
    MaxEnvelopeSizekb). The f:Message is the text Windows shows for it ("The computed response packet size
    (519197) exceeds the maximum envelope size that is allowed (512000)", quoted in public troubleshooting
    notes); the code is ERROR_WSMAN_MAX_ENVELOPE_SIZE_EXCEEDED and the subcode w:EncodingLimit (DSP0226 6.2,
    MS-WSMV 3.1.4.1.7); the pairing of that code with that text is [unconfirmed]."""
    size = f" ({computed})" if computed is not None else ""
    return WSManFault(
        "w:EncodingLimit",
        "The response that the WS-Management service computed exceeds the maximum envelope size in the request. ",
        code=E_MAX_ENVELOPE_SIZE_EXCEEDED,
        receiver=True,
        fault_detail=f"{ns.FAULT_DETAIL}/MaxEnvelopeSize",
        message=f"The WS-Management service cannot process the request. The computed response packet size{size} "
        f"exceeds the maximum envelope size that is allowed ({limit}). ",
    )


def access_denied() -> WSManFault:
    return WSManFault(
        "w:AccessDenied",
        "Access is denied. ",
        code=ERROR_ACCESS_DENIED,
        message="Access is denied. ",
    )


def internal_error(message: str = "The WS-Management service encountered an internal error. ") -> WSManFault:
    """What the ``http500`` fault injection sends."""
    return WSManFault("w:InternalError", message, code=E_FAIL, receiver=True)


def invalid_enumeration_context() -> WSManFault:
    return WSManFault(
        "n:InvalidEnumerationContext",
        "The WS-Enumeration context in the enumeration is not valid. Enumeration may have been completed or "
        "canceled. You cannot use this enumeration context anymore. Start a new enumeration. ",
        code=E_INVALID_ENUMERATION_CONTEXT,
        receiver=True,
        action=ns.FAULT_ENUMERATION,
    )


def filter_dialect_unavailable(dialect: str) -> WSManFault:
    return WSManFault(
        "n:FilterDialectRequestedUnavailable",
        "The filter dialect (the type associated with the filter) was not supported for this resource. Change the "
        "filter dialect or remove it from the request and try the request again. ",
        code=E_FILTER_DIALECT_UNAVAILABLE,
        message=f"The filter dialect {dialect} is not supported. ",
        action=ns.FAULT_ENUMERATION,
    )


def _extended_status(operation: str, parameter: str) -> str:
    """The ``__ExtendedStatus`` instance of samples/08."""
    uri = f"{ns.URI_WMI}root/cimv2/__ExtendedStatus"
    return (
        f'<f:ExtendedError><p:__ExtendedStatus xmlns:cim="{ns.CIM}" xmlns:p="{uri}" xmlns:xsi="{ns.XSI}" '
        f'xsi:type="p:__ExtendedStatus_Type"><p:Description xsi:nil="true"/><p:Operation>{esc(operation)}'
        f"</p:Operation><p:ParameterInfo>{esc(parameter)}</p:ParameterInfo><p:ProviderName>WinMgmt"
        f'</p:ProviderName><p:StatusCode xsi:nil="true"/></p:__ExtendedStatus></f:ExtendedError>'
    )


def cannot_process_filter(query: str, inner_message: str, machine: str, inner_code: int | None = None) -> WSManFault:
    """samples/08: unknown WQL class or a WQL the provider cannot parse. The outer and inner WSManFault both
    carry 2150858778 for an unknown class (as recorded); for a syntax error the inner one carries the WMI
    HRESULT."""
    code = inner_code if inner_code is not None else E_CANNOT_PROCESS_FILTER
    name, path = WMI_PROVIDER
    nested = _wsman_fault(code, machine, esc(inner_message))
    message_xml = (
        f'<f:ProviderFault path="{attr(path)}" provider="{attr(name)}">{nested}'
        f"{_extended_status('ExecQuery', query)}</f:ProviderFault>"
    )
    return WSManFault(
        "n:CannotProcessFilter",
        "The data source could not process the filter. The filter might be missing or it might be invalid. Change "
        "the filter and try the request again.  ",
        code=E_CANNOT_PROCESS_FILTER,
        message_xml=message_xml,
        action=ns.FAULT_ENUMERATION,
    )


def _cim(name: str, cim_type: str, value: str | int | None) -> str:
    if value is None:
        return f'<p:{name} xsi:nil="true" xsi:type="cim:{cim_type}"/>'
    text = esc(str(value))
    return f'<p:{name} xsi:type="cim:{cim_type}">{text}</p:{name}>'


def msft_wmi_error(error_code: int, message: str, *, cim_status: int = 1, category: int = 0) -> str:
    """An ``MSFT_WmiError`` instance in the shape of samples/09 (pywinrm reads ``error_Code`` from it)."""
    hresult = error_code & 0xFFFFFFFF
    fields = [
        _cim("CIMStatusCode", "cimUnsignedInt", cim_status),
        _cim("CIMStatusCodeDescription", "cimString", None),
        _cim("ErrorSource", "cimString", None),
        _cim("ErrorSourceFormat", "cimUnsignedShort", 0),
        _cim("ErrorType", "cimUnsignedShort", 0),
        _cim("Message", "cimString", message),
        _cim("MessageID", "cimString", f"HRESULT 0x{hresult:08x}"),
        _cim("OtherErrorSourceFormat", "cimString", None),
        _cim("OtherErrorType", "cimString", None),
        _cim("OwningEntity", "cimString", None),
        _cim("PerceivedSeverity", "cimUnsignedShort", 0),
        _cim("ProbableCause", "cimUnsignedShort", 0),
        _cim("ProbableCauseDescription", "cimString", None),
        _cim("error_Category", "cimUnsignedInt", category),
        _cim("error_Code", "cimUnsignedInt", hresult),
        _cim("error_Type", "cimString", "HRESULT"),
        _cim("error_WindowsErrorMessage", "cimString", message),
    ]
    return (
        f'<p:MSFT_WmiError b:IsCIM_Error="true" xmlns:b="{ns.CIMBINDING}" xmlns:cim="{ns.CIM}" '
        f'xmlns:p="{ns.WMIERROR}" xsi:type="p:MSFT_WmiError_Type" xmlns:xsi="{ns.XSI}">{"".join(fields)}'
        "</p:MSFT_WmiError>"
    )


def shell_quota(limit: int = 30, winrm_version: int = 3) -> WSManFault:
    """MaxShellsPerUser exceeded on Create.

    WinRM 3.0: samples/09 (WinRb's recording), verbatim in shape: only an MSFT_WmiError in the Detail, no
    f:WSManFault. WinRM 2.0 (Windows 7 / Server 2008 R2) answers with an f:WSManFault carrying Code 2150859173
    and "This user is allowed a maximum number of 5 concurrent shells" (the fault WinRb printed against a 2008 R2
    guest, hashicorp/vagrant#7489); its subcode and reason are taken from the 3.0 fault [unconfirmed]."""
    message = (
        f"The WS-Management service cannot process the request. This user is allowed a maximum number of {limit} "
        "concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. "
    )
    reason = (
        "The WS-Management service cannot process the request. The maximum number of concurrent shells for this "
        "user has been exceeded. Close existing shells or raise the quota for this user. "
    )
    if winrm_version < 3:
        return WSManFault("w:QuotaLimit", reason, code=E_SHELL_QUOTA, message=message)
    return WSManFault(
        "w:QuotaLimit",
        reason,
        code=None,
        extra_detail=msft_wmi_error(E_SHELL_QUOTA, message, cim_status=27, category=30),
    )


def operations_quota(limit: int, winrm_version: int = 3) -> WSManFault:
    """MaxConcurrentOperationsPerUser exceeded (a Command in a shell that has run too many: WinRS does not give
    a command's operation back until the shell is deleted, MS-WSMV Appendix B <118>).

    WinRM 2.0: a real fault recorded by zenoss/txwinrm (``test/data_error/max_concurrent.xml``): s:Receiver,
    w:InternalError, f:WSManFault Code 2150859174, "This user is allowed a maximum number of 15 concurrent
    operations". WinRM 3.0 reports the code in an MSFT_WmiError (Ansible's winrm plugin reads
    ``wmierror_code == 0x803381A6``, ansible/ansible#83656; the message text is quoted in diyan/pywinrm#124 with
    1500); its other fields follow samples/09 [unconfirmed]."""
    reason = (
        "The WS-Management service cannot process the request. The maximum number of concurrent operations for "
        "this user has been exceeded. Close existing operations for this user, or raise the quota for this user. "
    )
    message = (
        f"The WS-Management service cannot process the request. This user is allowed a maximum number of {limit} "
        "concurrent operations, which has been exceeded. Close existing operations for this user, or raise the "
        "quota for this user. "
    )
    if winrm_version < 3:
        return WSManFault("w:InternalError", reason, code=E_OPERATIONS_QUOTA, receiver=True, message=message)
    return WSManFault(
        "w:InternalError",
        reason,
        code=None,
        receiver=True,
        extra_detail=msft_wmi_error(E_OPERATIONS_QUOTA, message, cim_status=27, category=30),
    )


# The WMI provider that serves a class, as WMI's __ExtendedStatus names it: CIMWin32 for Win32_* (the recording
# below); other classes' providers are not recorded, so the lab sends ProviderName nil for them.
_PROVIDERS = {"win32_": "CIMWin32"}


def instance_not_found(machine: str, resource_uri: str, selectors: dict[str, str]) -> WSManFault:
    """A Get (or method call) naming a WMI instance that does not exist. The shape of Windows Server 2012 R2's
    answer to a Get of ``Win32_Process`` Handle 29 (tests/data/recordings/omi, from microsoft/omi's parser test;
    omi#254 quotes the same fault): the WS-Addressing fault action, ``a:DestinationUnreachable``, FaultDetail
    InvalidResourceURI, code 2150858752, and a ``WMI Provider`` ProviderFault holding the same fault and the
    provider's ``__ExtendedStatus`` (operation, the instance path, the provider's name)."""
    text = (
        "The WS-Management service cannot process the request. The service cannot find the resource identified by "
        "the resource URI and selectors. "
    )
    class_name = resource_uri.rstrip("/").rsplit("/", 1)[-1]
    keys = ",".join(f'{k}="{v}"' for k, v in selectors.items())
    path = f"{class_name}.{keys}" if keys else class_name
    provider = next((p for prefix, p in _PROVIDERS.items() if class_name.lower().startswith(prefix)), None)
    status = (
        f'<p:__ExtendedStatus xmlns:xsi="{ns.XSI}" xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/'
        f'__ExtendedStatus" xmlns:cim="{ns.CIM}" xsi:type="p:__ExtendedStatus_Type">'
        f"{_cim('Description', 'cimString', None)}{_cim('Operation', 'cimString', 'GetObject')}"
        f"{_cim('ParameterInfo', 'cimString', path)}{_cim('ProviderName', 'cimString', provider)}"
        f"{_cim('StatusCode', 'cimUnsignedInt', None)}</p:__ExtendedStatus>"
    )
    name, provider_path = WMI_PROVIDER
    inner = (
        f'<f:ProviderFault provider="{attr(name)}" path="{attr(provider_path)}">'
        f"{_wsman_fault(E_RESOURCE_NOT_FOUND, machine, esc(text))}<f:ExtendedError>{status}</f:ExtendedError>"
        "</f:ProviderFault>"
    )
    return WSManFault(
        "a:DestinationUnreachable",
        text,
        code=E_RESOURCE_NOT_FOUND,
        fault_detail=f"{ns.FAULT_DETAIL}/InvalidResourceURI",
        message_xml=inner,
        action=ns.FAULT_ADDRESSING,
    )


def from_wmi_error(
    err: WmiError,
    machine: str,
    *,
    query: str | None = None,
    resource_uri: str = "",
    selectors: dict[str, str] | None = None,
) -> WSManFault:
    """Map a machine's ``WmiError`` to the fault Windows sends for it.

    The exact Windows shape for a failing WMI *method* is not confirmed by any recording (docs/evidence.md lists
    what the recordings cover). The lab
    sends ``s:Receiver`` / ``w:InternalError`` with ``f:WSManFault@Code`` = the HRESULT (what pypsrp exposes as
    ``WSManFaultError.code``) wrapped in a ``WMI Provider`` ProviderFault, and beside it an ``MSFT_WmiError``
    whose ``error_Code`` is the same HRESULT (what pywinrm exposes as ``wmierror_code``).
    """
    message = err.message if err.message.endswith(" ") else err.message + " "
    if err.kind == "invalid_class":
        if query is not None:
            return cannot_process_filter(query, "The specified class does not exist in the given namespace. ", machine)
        return destination_unreachable(resource_uri)
    if err.kind == "invalid_query":
        return cannot_process_filter(query or "", message, machine, inner_code=err.hresult)
    if err.kind == "access_denied":
        return access_denied()
    if err.kind == "not_found":
        return instance_not_found(machine, resource_uri, selectors or {})
    if err.kind == "invalid_parameter" and err.hresult & 0xFFFFFFFF == E_UNEXPECTED_SELECTORS:
        # a keyed class addressed without (all of) its key selectors: the code is ERROR_WSMAN_INVALID_SELECTORS,
        # so the subcode and reason are the ones Windows pairs with it (samples/05)
        return WSManFault(
            "w:InvalidSelectors",
            "The WS-Management service cannot process the request because the request contained invalid selectors "
            "for the resource. ",
            code=E_UNEXPECTED_SELECTORS,
            fault_detail=f"{ns.FAULT_DETAIL}/InsufficientSelectors",
            provider=WMI_PROVIDER,
            message=message,
        )
    if err.kind == "invalid_parameter":
        return WSManFault(
            "w:InvalidParameter",
            "The WS-Management service cannot process the request because a parameter for the operation is not valid. ",
            code=err.hresult,
            provider=WMI_PROVIDER,
            message=message,
            extra_detail=msft_wmi_error(err.hresult, message, cim_status=4),
        )
    return WSManFault(
        "w:InternalError",
        message,
        code=err.hresult,
        receiver=True,
        provider=WMI_PROVIDER,
        message=message,
        extra_detail=msft_wmi_error(err.hresult, message),
    )
