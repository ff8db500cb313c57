"""The CIM types of the WMI properties kmsfleet reads, and the ONE place WS-Management text becomes Python values.

Windows sends every WMI value as text. Whether it also says which class the text belongs to depends on the query:
``SELECT *`` answers typed ``<p:Class>`` elements, a query that names its properties answers ``<w:XmlFragment>``
items with bare child elements (recordings of Windows Server 2003/2008 R2/2012 in Zenoss txwinrm's test data).
Neither shape carries a per-property type, so the types come from this table (the classes' MOF definitions as
Microsoft documents them): uintN/sintN → ``int``, boolean → ``bool``, real → ``float``, datetime → aware
``datetime`` (from ISO 8601 as WS-Management writes it, or the DMTF text ``yyyymmddHHMMSS.ffffff+UUU``), arrays →
``list`` (even of one element), NULL → ``None``. Properties not in the table stay text (a repeated element
still becomes a list, a ``Datetime`` child still a datetime), and text that does not parse as its type is kept
as text rather than lost.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

CimType = str  # "string", "boolean", "uint8".."uint64", "sint8".."sint64", "real32", "real64", "datetime"
PropType = tuple[CimType, bool]  # (type, is_array)

# Only the properties that are not scalar strings are listed ("Name:type", "[]" = array). Sources: the classes'
# pages in Microsoft's WMI reference (Win32 provider, Software Licensing provider, Office's OSPP provider).
_SLP_COMMON = """
DiscoveredKeyManagementServiceMachinePort:uint32 EvaluationEndDate:datetime GracePeriodRemaining:uint32
IsKeyManagementServiceMachine:uint32 KeyManagementServiceCurrentCount:uint32 KeyManagementServicePort:uint32
LicenseIsAddon:boolean LicenseStatus:uint32 LicenseStatusReason:uint32 RequiredClientCount:uint32
TokenActivationGrantNumber:uint32 TokenActivationILVID:uint32 VLActivationInterval:uint32 VLRenewalInterval:uint32
"""
_SLS_COMMON = """
DiscoveredKeyManagementServiceMachinePort:uint32 IsKeyManagementServiceMachine:uint32
KeyManagementServiceCurrentCount:uint32 KeyManagementServiceHostCaching:boolean
KeyManagementServiceListeningPort:uint32 KeyManagementServicePort:uint32 PolicyCacheRefreshRequired:uint32
RequiredClientCount:uint32 TokenActivationGrantNumber:uint32 TokenActivationILVID:uint32 VLActivationInterval:uint32
VLRenewalInterval:uint32
"""
_KMS_COUNTERS = """
KeyManagementServiceFailedRequests:uint32 KeyManagementServiceLicensedRequests:uint32
KeyManagementServiceNonGenuineGraceRequests:uint32 KeyManagementServiceNotificationRequests:uint32
KeyManagementServiceOOBGraceRequests:uint32 KeyManagementServiceOOTGraceRequests:uint32
KeyManagementServiceTotalRequests:uint32 KeyManagementServiceUnlicensedRequests:uint32
"""
_SPECS: dict[str, str] = {
    "SoftwareLicensingProduct": _SLP_COMMON
    + _KMS_COUNTERS
    + """
AutomaticVMActivationLastActivationTime:datetime ExtendedGrace:uint32 GenuineStatus:uint32
RemainingAppReArmCount:uint32 RemainingSkuReArmCount:uint32 TrustedTime:datetime VLActivationType:uint32
VLActivationTypeEnabled:uint32
""",
    "SoftwareLicensingService": _SLS_COMMON
    + _KMS_COUNTERS
    + """
KeyManagementServiceDnsPublishing:boolean KeyManagementServiceLowPriority:boolean OA2xBiosMarkerMinorVersion:uint32
OA2xBiosMarkerStatus:uint32 RemainingWindowsReArmCount:uint32
""",
    "OfficeSoftwareProtectionProduct": _SLP_COMMON,
    "OfficeSoftwareProtectionService": _SLS_COMMON,
    "Win32_OperatingSystem": """
CurrentTimeZone:sint16 DataExecutionPrevention_32BitApplications:boolean DataExecutionPrevention_Available:boolean
DataExecutionPrevention_Drivers:boolean DataExecutionPrevention_SupportPolicy:uint8 Debug:boolean Distributed:boolean
EncryptionLevel:uint32 ForegroundApplicationBoost:uint8 FreePhysicalMemory:uint64 FreeSpaceInPagingFiles:uint64
FreeVirtualMemory:uint64 InstallDate:datetime LargeSystemCache:uint32 LastBootUpTime:datetime LocalDateTime:datetime
MaxNumberOfProcesses:uint32 MaxProcessMemorySize:uint64 MUILanguages:string[] NumberOfLicensedUsers:uint32
NumberOfProcesses:uint32 NumberOfUsers:uint32 OperatingSystemSKU:uint32 OSLanguage:uint32 OSProductSuite:uint32
OSType:uint16 PAEEnabled:boolean PortableOperatingSystem:boolean Primary:boolean ProductType:uint32
QuantumLength:uint8 QuantumType:uint8 ServicePackMajorVersion:uint16 ServicePackMinorVersion:uint16
SizeStoredInPagingFiles:uint64 SuiteMask:uint32 TotalSwapSpaceSize:uint64 TotalVirtualMemorySize:uint64
TotalVisibleMemorySize:uint64
""",
    "Win32_ComputerSystem": """
AdminPasswordStatus:uint16 AutomaticManagedPagefile:boolean AutomaticResetBootOption:boolean
AutomaticResetCapability:boolean BootOptionOnLimit:uint16 BootOptionOnWatchDog:uint16 BootROMSupported:boolean
ChassisBootupState:uint16 CurrentTimeZone:sint16 DaylightInEffect:boolean DomainRole:uint16
EnableDaylightSavingsTime:boolean FrontPanelResetStatus:uint16 HypervisorPresent:boolean InfraredSupported:boolean
KeyboardPasswordStatus:uint16 NetworkServerModeEnabled:boolean NumberOfLogicalProcessors:uint32
NumberOfProcessors:uint32 OEMStringArray:string[] PartOfDomain:boolean PauseAfterReset:sint64 PCSystemType:uint16
PowerManagementCapabilities:uint16[] PowerManagementSupported:boolean PowerOnPasswordStatus:uint16 PowerState:uint16
PowerSupplyState:uint16 ResetCapability:uint16 ResetCount:sint16 ResetLimit:sint16 Roles:string[]
SupportContactDescription:string[] SystemStartupDelay:uint16 SystemStartupOptions:string[]
SystemStartupSetting:uint8 ThermalState:uint16 TotalPhysicalMemory:uint64 WakeUpType:uint16
""",
    "Win32_TimeZone": """
Bias:sint32 DaylightBias:sint32 DaylightDay:uint32 DaylightDayOfWeek:uint8 DaylightHour:uint32
DaylightMillisecond:uint32 DaylightMinute:uint32 DaylightMonth:uint32 DaylightSecond:uint32 DaylightYear:uint32
StandardBias:uint32 StandardDay:uint32 StandardDayOfWeek:uint8 StandardHour:uint32 StandardMillisecond:uint32
StandardMinute:uint32 StandardMonth:uint32 StandardSecond:uint32 StandardYear:uint32
""",
    "Win32_BIOS": """
BiosCharacteristics:uint16[] BIOSVersion:string[] EmbeddedControllerMajorVersion:uint8
EmbeddedControllerMinorVersion:uint8 InstallableLanguages:uint16 InstallDate:datetime ListOfLanguages:string[]
PrimaryBIOS:boolean ReleaseDate:datetime SMBIOSMajorVersion:uint16 SMBIOSMinorVersion:uint16 SMBIOSPresent:boolean
SoftwareElementState:uint16 SystemBiosMajorVersion:uint8 SystemBiosMinorVersion:uint8 TargetOperatingSystem:uint16
""",
    "Win32_Service": """
AcceptPause:boolean AcceptStop:boolean CheckPoint:uint32 DelayedAutoStart:boolean DesktopInteract:boolean
ExitCode:uint32 InstallDate:datetime ProcessId:uint32 ServiceSpecificExitCode:uint32 Started:boolean TagId:uint32
WaitHint:uint32
""",
    "Win32_NetworkAdapterConfiguration": """
ArpAlwaysSourceRoute:boolean ArpUseEtherSNAP:boolean DeadGWDetectEnabled:boolean DefaultIPGateway:string[]
DefaultTOS:uint8 DefaultTTL:uint8 DHCPEnabled:boolean DHCPLeaseExpires:datetime DHCPLeaseObtained:datetime
DNSDomainSuffixSearchOrder:string[] DNSEnabledForWINSResolution:boolean DNSServerSearchOrder:string[]
DomainDNSRegistrationEnabled:boolean ForwardBufferMemory:uint32 FullDNSRegistrationEnabled:boolean
GatewayCostMetric:uint16[] IGMPLevel:uint8 Index:uint32 InterfaceIndex:uint32 IPAddress:string[]
IPConnectionMetric:uint32 IPEnabled:boolean IPFilterSecurityEnabled:boolean IPPortSecurityEnabled:boolean
IPSecPermitIPProtocols:string[] IPSecPermitTCPPorts:string[] IPSecPermitUDPPorts:string[] IPSubnet:string[]
IPUseZeroBroadcast:boolean IPXEnabled:boolean IPXFrameType:uint32[] IPXMediaType:uint32 IPXNetworkNumber:string[]
KeepAliveInterval:uint32 KeepAliveTime:uint32 MTU:uint32 NumForwardPackets:uint32 PMTUBHDetectEnabled:boolean
PMTUDiscoveryEnabled:boolean TcpipNetbiosOptions:uint32 TcpMaxConnectRetransmissions:uint32
TcpMaxDataRetransmissions:uint32 TcpNumConnections:uint32 TcpUseRFC1122UrgentPointer:boolean TcpWindowSize:uint16
WINSEnableLMHostsLookup:boolean
""",
}
# Every method kmsfleet calls returns its HRESULT-or-0 in ReturnValue (uint32).
_METHOD_OUTPUT: dict[str, PropType] = {"returnvalue": ("uint32", False)}


def _parse_spec(spec: str) -> dict[str, PropType]:
    out: dict[str, PropType] = {}
    for word in spec.split():
        name, _, cim_type = word.partition(":")
        out[name.lower()] = (cim_type.removesuffix("[]"), cim_type.endswith("[]"))
    return out


PROPERTY_TYPES: dict[str, dict[str, PropType]] = {cls.lower(): _parse_spec(spec) for cls, spec in _SPECS.items()}


def property_type(class_name: str | None, prop: str) -> PropType | None:
    """The (CIM type, is array) of ``class_name.prop``; ``("string", False)`` for a known class's other
    properties; None when the class is not in the table (or is unknown)."""
    if class_name is None:
        return None
    low = class_name.lower()
    if low.endswith("_output"):
        return _METHOD_OUTPUT.get(prop.lower())
    table = PROPERTY_TYPES.get(low)
    if table is None:
        return None
    return table.get(prop.lower(), ("string", False))


_DMTF = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})\.(\d{6})([+-])(\d{3})$")


def parse_datetime(text: str) -> datetime | str:
    """A CIM datetime as WS-Management writes it (ISO 8601: ``2013-04-15T20:28:21.085Z``,
    ``2014-04-03T14:45:50.46875+08:00``) or as DMTF text (``20130415202821.085000+480``, the offset in minutes)
    → an aware datetime (no zone = UTC). Anything else (an interval, junk) is returned unchanged."""
    t = text.strip()
    m = _DMTF.match(t)
    if m:
        y, mo, d, h, mi, s, us, sign, off = m.groups()
        tz = timezone(timedelta(minutes=int(off) * (1 if sign == "+" else -1)))
        try:
            return datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(us), tzinfo=tz)
        except ValueError:
            return t
    try:
        value = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
    except ValueError:
        return t
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@lru_cache(maxsize=16)
def _int_range(cim_type: CimType) -> tuple[int, int]:
    bits = int(cim_type[4:])
    if cim_type.startswith("uint"):
        return 0, (1 << bits) - 1
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def convert_scalar(value: Any, cim_type: CimType) -> Any:
    """One non-NULL value (text, or an already parsed datetime/mapping) → its Python type; unparsable text stays
    text."""
    if not isinstance(value, str) or cim_type == "string":
        return value
    text = value.strip()
    if cim_type == "datetime":
        return parse_datetime(text)
    if cim_type == "boolean":
        return _boolean(text, value)
    if cim_type.startswith(("uint", "sint")):
        return _integer(text, value, cim_type)
    if cim_type.startswith("real"):
        return _real(text, value)
    return value


def _boolean(text: str, value: str) -> bool | str:
    """CIM's boolean text (``true``/``false``, as WMI writes it, or 1/0); not Ansible's wider word list."""
    low = text.lower()
    if low in ("true", "1"):
        return True
    if low in ("false", "0"):
        return False
    return value


def _integer(text: str, value: str, cim_type: CimType) -> int | str:
    try:
        number = int(text)
    except ValueError:
        return value
    low_bound, high_bound = _int_range(cim_type)
    return number if low_bound <= number <= high_bound else value


def _real(text: str, value: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return value


def convert(value: Any, prop_type: PropType) -> Any:
    """A property's value as parsed from the wire (None, one value, or a list of repeated elements) → typed."""
    cim_type, is_array = prop_type
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    typed = [None if v is None else convert_scalar(v, cim_type) for v in values]
    if is_array:
        return typed
    return typed[0] if len(typed) == 1 else typed
