"""The WMI classes of a simulated PC (namespace ``root/cimv2``): real class and property names, CIM types,
NULLs, arrays and datetimes. Instances are built on demand from the machine's state (nothing is stored), so a
lab of 5,000 PCs costs no memory for them.

Classes: SoftwareLicensingService, SoftwareLicensingProduct, OfficeSoftwareProtectionService and
OfficeSoftwareProtectionProduct (only on Windows 7 with Office 2013/2016, as ospp.vbs expects), Win32_OperatingSystem,
Win32_ComputerSystem, Win32_TimeZone, Win32_BIOS, Win32_Service, Win32_NetworkAdapterConfiguration.

Properties are listed alphabetically, the order WMI returns them. A WQL ``SELECT a, b`` returns the selected
properties plus the class's key properties (WMI keeps keys in partial instances so the path stays valid).

Deviations/choices:
- ``Win32_TimeZone.Bias`` is minutes *east* of UTC (Taipei +480, Pacific -480), i.e. UTC = local - Bias, as
  Microsoft's Win32_TimeZone page states; the registry TZI structure uses the opposite sign.
- ``Win32_OperatingSystem.CurrentTimeZone`` and ``Win32_ComputerSystem.CurrentTimeZone`` include daylight
  saving time; the DST rules of the modelled zones (US and UK) are built in, so no tz database is needed.
- Datetimes are timezone-aware ``datetime`` values in the PC's local offset (what Windows puts in
  ``<cim:Datetime>``); ``EvaluationEndDate`` is 1601-01-01 (FILETIME 0) like real products without expiry.
- Host-only KMS counters on clients are 4294967295 (-1 as uint32), as documented for non-hosts.
- Windows 7 lacks the Windows 8+ licensing properties (ProductKeyChannel, KeyManagementServiceLookupDomain,
  DiscoveredKeyManagementServiceMachineIpAddress, AD/AVMA activation, OA3x, ...): querying them is an error.
- The PC's network adapter reports its loopback lab address (the address its WS-Man listener uses).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from itertools import compress, count
from typing import TYPE_CHECKING, Any

from orchestrator.lab import services
from orchestrator.lab.licensing import (
    LICENSE_STATUS_NAMES,
    SkuView,
    installation_id,
    product_key_id,
)
from orchestrator.lab.provider import CimInstance, CimType, CimValue, WmiError
from orchestrator.lab.timezones import in_dst

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.machine import Machine

NAMESPACE = "root/cimv2"
FILETIME_ZERO = datetime(1601, 1, 1, tzinfo=UTC)
NONE32 = 4294967295
WBEM_E_NOT_FOUND = 0x80041002
WBEM_E_INVALID_NAMESPACE = 0x8004100E
WBEM_E_INVALID_CLASS = 0x80041010
WBEM_E_INVALID_METHOD = 0x8004102E  # wbemcli.h: "Requested method is not available"
WBEM_E_INVALID_METHOD_PARAMETERS = 0x8004102F
WSMAN_INVALID_SELECTORS = 0x8033805B

# ---------------------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------------------


PropDef = tuple[str, CimType, bool]  # name, type, is_array
_MAX_PLANS = 256
Builder = Callable[["Machine"], list[dict[str, CimValue]]]


@dataclass(frozen=True)
class WmiClass:
    name: str
    props: tuple[PropDef, ...]
    keys: tuple[str, ...]
    builder: Builder
    methods: tuple[str, ...] = ()
    singleton: bool = False

    @cached_property
    def schema(self) -> dict[str, PropDef]:
        return {name.lower(): (name, t, arr) for name, t, arr in self.props}

    @cached_property
    def _plans(self) -> dict[tuple[str, ...] | None, _Plan]:
        return {}

    def instance(self, values: dict[str, CimValue], only: tuple[str, ...] | None = None) -> CimInstance:
        plan = self._plans.get(only)
        if plan is None:  # the properties a selection returns, in class order: worked out once per selection
            plan = self._plan(only)
            if len(self._plans) >= _MAX_PLANS:  # a client inventing selections cannot grow it without bound
                self._plans.clear()
            self._plans[only] = plan
        vals = tuple(map(values.get, plan.names))
        fixed = tuple(compress(vals, plan.fixed))
        key = (plan.id, plan.slots, fixed, tuple(map(type, fixed)))
        return CimInstance.planned(self.name, (plan.names, plan.types, vals), NAMESPACE, key)

    def _plan(self, only: tuple[str, ...] | None) -> _Plan:
        wanted = None if only is None else {n.lower() for n in (*only, *self.keys)}
        chosen = [d for d in self.props if wanted is None or d[0].lower() in wanted]
        slots = tuple(i for i, (name, t, arr) in enumerate(chosen) if t == "datetime" or arr or name in _MOVING)
        return _Plan(
            names=tuple(name for name, _, _ in chosen),
            types=tuple(t for _, t, _ in chosen),
            id=next(_PLAN_IDS),
            slots=slots,
            fixed=tuple(i not in slots for i in range(len(chosen))),
        )


@dataclass(frozen=True)
class _Plan:
    """The properties one selection of a class returns, and which of them a row template leaves as slots
    (lab/wsman/cim.py): datetimes (``TrustedTime`` is the PC's clock), arrays and the counters that move with
    time; every other value is part of the row's key."""

    names: tuple[str, ...]
    types: tuple[CimType, ...]
    id: int  # never reused, so a template cannot outlive its plan's meaning
    slots: tuple[int, ...]
    fixed: tuple[bool, ...]  # not a slot, position by position


# Non-datetime properties whose value moves with the clock alone: slots, so a row does not need a new template
# every minute (a template keyed by them would still be right, only rebuilt more often)
_MOVING = frozenset({"GracePeriodRemaining"})
_PLAN_IDS = count()


def _p(spec: str) -> tuple[PropDef, ...]:
    """Parse 'Name:type' lines ('[]' suffix = array) into sorted property definitions."""
    out: list[PropDef] = []
    for line in spec.split():
        name, _, t = line.partition(":")
        arr = t.endswith("[]")
        out.append((name, t.removesuffix("[]"), arr))  # type: ignore[arg-type]
    return tuple(sorted(out, key=lambda d: d[0].lower()))


_SLS_PROPS = """
ClientMachineID:string DiscoveredKeyManagementServiceMachineIpAddress:string
DiscoveredKeyManagementServiceMachineName:string DiscoveredKeyManagementServiceMachinePort:uint32
IsKeyManagementServiceMachine:uint32 KeyManagementServiceCurrentCount:uint32 KeyManagementServiceDnsPublishing:boolean
KeyManagementServiceFailedRequests:uint32 KeyManagementServiceHostCaching:boolean
KeyManagementServiceLicensedRequests:uint32 KeyManagementServiceListeningPort:uint32
KeyManagementServiceLookupDomain:string KeyManagementServiceLowPriority:boolean KeyManagementServiceMachine:string
KeyManagementServiceNonGenuineGraceRequests:uint32 KeyManagementServiceNotificationRequests:uint32
KeyManagementServiceOOBGraceRequests:uint32 KeyManagementServiceOOTGraceRequests:uint32
KeyManagementServicePort:uint32 KeyManagementServiceProductKeyID:string KeyManagementServiceTotalRequests:uint32
KeyManagementServiceUnlicensedRequests:uint32 OA2xBiosMarkerMinorVersion:uint32 OA2xBiosMarkerStatus:uint32
OA3xOriginalProductKey:string OA3xOriginalProductKeyDescription:string OA3xOriginalProductKeyPkPn:string
PolicyCacheRefreshRequired:uint32 RemainingWindowsReArmCount:uint32 RequiredClientCount:uint32
TokenActivationAdditionalInfo:string TokenActivationCertificateThumbprint:string TokenActivationGrantNumber:uint32
TokenActivationILID:string TokenActivationILVID:uint32 Version:string VLActivationInterval:uint32
VLRenewalInterval:uint32
"""
_SLS_WIN8_ONLY = {
    "discoveredkeymanagementservicemachineipaddress",
    "keymanagementservicelookupdomain",
    "oa2xbiosmarkerminorversion",
    "oa2xbiosmarkerstatus",
    "oa3xoriginalproductkey",
    "oa3xoriginalproductkeydescription",
    "oa3xoriginalproductkeypkpn",
}

_SLP_PROPS = """
ADActivationCsvlkPid:string ADActivationCsvlkSkuId:string ADActivationObjectDN:string ADActivationObjectName:string
ApplicationID:string AutomaticVMActivationHostDigitalPid2:string AutomaticVMActivationHostMachineName:string
AutomaticVMActivationLastActivationTime:datetime Description:string
DiscoveredKeyManagementServiceMachineIpAddress:string DiscoveredKeyManagementServiceMachineName:string
DiscoveredKeyManagementServiceMachinePort:uint32 EvaluationEndDate:datetime ExtendedGrace:uint32 GenuineStatus:uint32
GracePeriodRemaining:uint32 IAID:string ID:string IsKeyManagementServiceMachine:uint32
KeyManagementServiceCurrentCount:uint32 KeyManagementServiceFailedRequests:uint32
KeyManagementServiceLicensedRequests:uint32 KeyManagementServiceLookupDomain:string KeyManagementServiceMachine:string
KeyManagementServiceNonGenuineGraceRequests:uint32 KeyManagementServiceNotificationRequests:uint32
KeyManagementServiceOOBGraceRequests:uint32 KeyManagementServiceOOTGraceRequests:uint32 KeyManagementServicePort:uint32
KeyManagementServiceProductKeyID:string KeyManagementServiceTotalRequests:uint32
KeyManagementServiceUnlicensedRequests:uint32 LicenseDependsOn:string LicenseFamily:string LicenseIsAddon:boolean
LicenseStatus:uint32 LicenseStatusReason:uint32 MachineURL:string Name:string OfflineInstallationId:string
PartialProductKey:string ProcessorURL:string ProductKeyChannel:string ProductKeyID:string ProductKeyID2:string
ProductKeyURL:string RemainingAppReArmCount:uint32 RemainingSkuReArmCount:uint32 RequiredClientCount:uint32
TokenActivationAdditionalInfo:string TokenActivationCertificateThumbprint:string TokenActivationGrantNumber:uint32
TokenActivationILID:string TokenActivationILVID:uint32 TrustedTime:datetime UseLicenseURL:string ValidationURL:string
VLActivationInterval:uint32 VLActivationType:uint32 VLActivationTypeEnabled:uint32 VLRenewalInterval:uint32
"""
_SLP_WIN8_ONLY = {
    "adactivationcsvlkpid",
    "adactivationcsvlkskuid",
    "adactivationobjectdn",
    "adactivationobjectname",
    "automaticvmactivationhostdigitalpid2",
    "automaticvmactivationhostmachinename",
    "automaticvmactivationlastactivationtime",
    "discoveredkeymanagementservicemachineipaddress",
    "genuinestatus",
    "iaid",
    "keymanagementservicelookupdomain",
    "productkeychannel",
    "productkeyid2",
    "remainingappreamcount",
    "remainingapprearmcount",
    "vlactivationtype",
    "vlactivationtypeenabled",
    "trustedtime",
}
_OSPP_SERVICE_PROPS = """
ClientMachineID:string DiscoveredKeyManagementServiceMachineName:string DiscoveredKeyManagementServiceMachinePort:uint32
IsKeyManagementServiceMachine:uint32 KeyManagementServiceCurrentCount:uint32 KeyManagementServiceHostCaching:boolean
KeyManagementServiceListeningPort:uint32 KeyManagementServiceMachine:string KeyManagementServicePort:uint32
KeyManagementServiceProductKeyID:string PolicyCacheRefreshRequired:uint32 RequiredClientCount:uint32
TokenActivationAdditionalInfo:string TokenActivationCertificateThumbprint:string TokenActivationGrantNumber:uint32
TokenActivationILID:string TokenActivationILVID:uint32 Version:string VLActivationInterval:uint32
VLRenewalInterval:uint32
"""
_OSPP_PRODUCT_PROPS = """
ApplicationID:string Description:string DiscoveredKeyManagementServiceMachineName:string
DiscoveredKeyManagementServiceMachinePort:uint32 EvaluationEndDate:datetime GracePeriodRemaining:uint32 ID:string
IsKeyManagementServiceMachine:uint32 KeyManagementServiceCurrentCount:uint32 KeyManagementServiceMachine:string
KeyManagementServicePort:uint32 KeyManagementServiceProductKeyID:string LicenseDependsOn:string LicenseFamily:string
LicenseIsAddon:boolean LicenseStatus:uint32 LicenseStatusReason:uint32 MachineURL:string Name:string
OfflineInstallationId:string PartialProductKey:string ProcessorURL:string ProductKeyID:string ProductKeyURL:string
RequiredClientCount:uint32 TokenActivationAdditionalInfo:string TokenActivationCertificateThumbprint:string
TokenActivationGrantNumber:uint32 TokenActivationILID:string TokenActivationILVID:uint32 UseLicenseURL:string
ValidationURL:string VLActivationInterval:uint32 VLRenewalInterval:uint32
"""
_OS_PROPS = """
BootDevice:string BuildNumber:string BuildType:string Caption:string CodeSet:string CountryCode:string
CreationClassName:string CSCreationClassName:string CSDVersion:string CSName:string CurrentTimeZone:sint16
DataExecutionPrevention_32BitApplications:boolean DataExecutionPrevention_Available:boolean
DataExecutionPrevention_Drivers:boolean DataExecutionPrevention_SupportPolicy:uint8 Debug:boolean Description:string
Distributed:boolean EncryptionLevel:uint32 ForegroundApplicationBoost:uint8 FreePhysicalMemory:uint64
FreeSpaceInPagingFiles:uint64 FreeVirtualMemory:uint64 InstallDate:datetime LastBootUpTime:datetime
LocalDateTime:datetime Locale:string Manufacturer:string MaxNumberOfProcesses:uint32 MaxProcessMemorySize:uint64
MUILanguages:string[] Name:string NumberOfLicensedUsers:uint32 NumberOfProcesses:uint32 NumberOfUsers:uint32
OperatingSystemSKU:uint32 Organization:string OSArchitecture:string OSLanguage:uint32 OSProductSuite:uint32
OSType:uint16 OtherTypeDescription:string PortableOperatingSystem:boolean Primary:boolean ProductType:uint32
RegisteredUser:string SerialNumber:string ServicePackMajorVersion:uint16 ServicePackMinorVersion:uint16
SizeStoredInPagingFiles:uint64 Status:string SuiteMask:uint32 SystemDevice:string SystemDirectory:string
SystemDrive:string TotalVirtualMemorySize:uint64 TotalVisibleMemorySize:uint64 Version:string WindowsDirectory:string
"""
_CS_PROPS = """
AdminPasswordStatus:uint16 AutomaticManagedPagefile:boolean AutomaticResetBootOption:boolean
AutomaticResetCapability:boolean BootupState:string Caption:string ChassisBootupState:uint16 CreationClassName:string
CurrentTimeZone:sint16 DaylightInEffect:boolean Description:string DNSHostName:string Domain:string DomainRole:uint16
EnableDaylightSavingsTime:boolean HypervisorPresent:boolean Manufacturer:string Model:string Name:string
NetworkServerModeEnabled:boolean NumberOfLogicalProcessors:uint32 NumberOfProcessors:uint32 PartOfDomain:boolean
PCSystemType:uint16 PowerState:uint16 PrimaryOwnerName:string Roles:string[] Status:string SystemFamily:string
SystemSKUNumber:string SystemType:string ThermalState:uint16 TotalPhysicalMemory:uint64 UserName:string
WakeUpType:uint16 Workgroup:string
"""
_TZ_PROPS = """
Bias:sint32 Caption:string DaylightBias:sint32 DaylightDay:uint32 DaylightDayOfWeek:uint8 DaylightHour:uint32
DaylightMillisecond:uint32 DaylightMinute:uint32 DaylightMonth:uint32 DaylightName:string DaylightSecond:uint32
DaylightYear:uint32 Description:string SettingID:string StandardBias:uint32 StandardDay:uint32
StandardDayOfWeek:uint8 StandardHour:uint32 StandardMillisecond:uint32 StandardMinute:uint32 StandardMonth:uint32
StandardName:string StandardSecond:uint32 StandardYear:uint32
"""
_BIOS_PROPS = """
BiosCharacteristics:uint16[] BIOSVersion:string[] BuildNumber:string Caption:string CodeSet:string
CurrentLanguage:string Description:string EmbeddedControllerMajorVersion:uint8 EmbeddedControllerMinorVersion:uint8
IdentificationCode:string InstallableLanguages:uint16 InstallDate:datetime LanguageEdition:string
ListOfLanguages:string[] Manufacturer:string Name:string OtherTargetOS:string PrimaryBIOS:boolean
ReleaseDate:datetime SerialNumber:string SMBIOSBIOSVersion:string SMBIOSMajorVersion:uint16
SMBIOSMinorVersion:uint16 SMBIOSPresent:boolean SoftwareElementID:string SoftwareElementState:uint16 Status:string
SystemBiosMajorVersion:uint8 SystemBiosMinorVersion:uint8 TargetOperatingSystem:uint16 Version:string
"""
_SERVICE_PROPS = """
AcceptPause:boolean AcceptStop:boolean Caption:string CheckPoint:uint32 CreationClassName:string
DelayedAutoStart:boolean Description:string DesktopInteract:boolean DisplayName:string ErrorControl:string
ExitCode:uint32 InstallDate:datetime Name:string PathName:string ProcessId:uint32 ServiceSpecificExitCode:uint32
ServiceType:string Started:boolean StartMode:string StartName:string State:string Status:string
SystemCreationClassName:string SystemName:string TagId:uint32 WaitHint:uint32
"""
_NAC_PROPS = """
Caption:string DatabasePath:string DefaultIPGateway:string[] Description:string DHCPEnabled:boolean
DHCPLeaseExpires:datetime DHCPLeaseObtained:datetime DHCPServer:string DNSDomain:string
DNSDomainSuffixSearchOrder:string[] DNSEnabledForWINSResolution:boolean DNSHostName:string
DNSServerSearchOrder:string[] DomainDNSRegistrationEnabled:boolean FullDNSRegistrationEnabled:boolean
GatewayCostMetric:uint16[] Index:uint32 InterfaceIndex:uint32 IPAddress:string[] IPConnectionMetric:uint32
IPEnabled:boolean IPFilterSecurityEnabled:boolean IPSubnet:string[] MACAddress:string ServiceName:string
SettingID:string TcpipNetbiosOptions:uint32 WINSEnableLMHostsLookup:boolean WINSPrimaryServer:string
"""

_SERVICE_METHODS = (
    "InstallProductKey",
    "SetKeyManagementServiceMachine",
    "SetKeyManagementServicePort",
    "ClearKeyManagementServiceMachine",
    "ClearKeyManagementServicePort",
    "RefreshLicenseStatus",
    "DisableKeyManagementServiceHostCaching",
    "ReArmWindows",
)
_PRODUCT_METHODS = (
    "Activate",
    "UninstallProductKey",
    "SetKeyManagementServiceMachine",
    "SetKeyManagementServicePort",
    "ClearKeyManagementServiceMachine",
    "ClearKeyManagementServicePort",
)

# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------

_WINDOWS_URLS = {
    "ProcessorURL": "http://go.microsoft.com/fwlink/?LinkID=88338",
    "MachineURL": "http://go.microsoft.com/fwlink/?LinkID=88339",
    "ProductKeyURL": "http://go.microsoft.com/fwlink/?LinkID=88340",
    "UseLicenseURL": "http://go.microsoft.com/fwlink/?LinkID=88341",
    "ValidationURL": "http://go.microsoft.com/fwlink/?LinkID=88342",
}


# What a KMS client (not a host) reports for the host-only KMS counters and token activation, in both the
# service and the product class: NONE32 (-1 as uint32) or NULL
_HOST_ONLY: dict[str, CimValue] = {
    "KeyManagementServiceCurrentCount": NONE32,
    "KeyManagementServiceFailedRequests": NONE32,
    "KeyManagementServiceLicensedRequests": NONE32,
    "KeyManagementServiceNonGenuineGraceRequests": NONE32,
    "KeyManagementServiceNotificationRequests": NONE32,
    "KeyManagementServiceOOBGraceRequests": NONE32,
    "KeyManagementServiceOOTGraceRequests": NONE32,
    "KeyManagementServiceTotalRequests": NONE32,
    "KeyManagementServiceUnlicensedRequests": NONE32,
    "RequiredClientCount": NONE32,
    "TokenActivationAdditionalInfo": None,
    "TokenActivationCertificateThumbprint": None,
    "TokenActivationGrantNumber": NONE32,
    "TokenActivationILID": None,
    "TokenActivationILVID": NONE32,
}


def _service_values(m: Machine, ospp: bool) -> list[dict[str, CimValue]]:
    lic = m.licensing
    service = lic.ospp if ospp else lic.spp
    if service is None:
        return []
    products = lic.ospp_products() if ospp else lic.spp_products()
    last = next((p for p in products if p.kms_ip), None)
    return [
        {
            **_HOST_ONLY,
            "ClientMachineID": service.cmid,
            "DiscoveredKeyManagementServiceMachineIpAddress": last.kms_ip if last else None,
            "DiscoveredKeyManagementServiceMachineName": None,
            "DiscoveredKeyManagementServiceMachinePort": 0,
            "IsKeyManagementServiceMachine": 0,
            "KeyManagementServiceDnsPublishing": True,
            "KeyManagementServiceHostCaching": service.host_caching,
            "KeyManagementServiceListeningPort": 0,
            "KeyManagementServiceLookupDomain": service.lookup_domain,
            "KeyManagementServiceLowPriority": False,
            "KeyManagementServiceMachine": service.kms.machine,
            "KeyManagementServicePort": service.kms.port,
            "KeyManagementServiceProductKeyID": last.kms_epid if last else None,
            "OA2xBiosMarkerMinorVersion": 1 if m.config.windows_channel == "oem_slic" else 0,
            "OA2xBiosMarkerStatus": 1 if m.config.windows_channel == "oem_slic" else 0,
            "OA3xOriginalProductKey": m.oa3_key,
            "OA3xOriginalProductKeyDescription": m.oa3_description,
            "OA3xOriginalProductKeyPkPn": None,
            "PolicyCacheRefreshRequired": 0,
            "RemainingWindowsReArmCount": service.rearm_count,
            "Version": service.version,
            "VLActivationInterval": service.activation_interval,
            "VLRenewalInterval": service.renewal_interval,
        }
    ]


# SoftwareLicensingProduct properties every row has with the same value
_SLP_FIXED: dict[str, CimValue] = {
    **_HOST_ONLY,
    "ADActivationCsvlkPid": None,
    "ADActivationCsvlkSkuId": None,
    "ADActivationObjectDN": None,
    "ADActivationObjectName": None,
    "AutomaticVMActivationHostDigitalPid2": None,
    "AutomaticVMActivationHostMachineName": None,
    "AutomaticVMActivationLastActivationTime": FILETIME_ZERO,
    "DiscoveredKeyManagementServiceMachineName": None,
    "DiscoveredKeyManagementServiceMachinePort": 0,
    "EvaluationEndDate": FILETIME_ZERO,
    "ExtendedGrace": 0,
    "IAID": None,
    "IsKeyManagementServiceMachine": 0,
    "LicenseDependsOn": None,
    "LicenseIsAddon": False,
    "VLActivationTypeEnabled": 0,
}


def product_values(m: Machine, view: SkuView) -> dict[str, CimValue]:
    sku, product = view.sku, view.product
    kms_row = sku.is_kms_client
    keyed = view.has_key and product.key is not None
    key = product.key or ""
    windows = product.app == "windows"
    urls = _WINDOWS_URLS if windows and keyed and not kms_row else {}
    activated_kms = keyed and kms_row and product.kms_epid is not None and view.license_status in (1, 3)
    values: dict[str, CimValue] = {
        **_SLP_FIXED,
        "ApplicationID": sku.application_id,
        "Description": sku.description,
        "DiscoveredKeyManagementServiceMachineIpAddress": product.kms_ip if activated_kms else None,
        "GenuineStatus": 0 if keyed else 1,
        "GracePeriodRemaining": view.grace_minutes,
        "ID": sku.id,
        "KeyManagementServiceLookupDomain": product.service.lookup_domain if kms_row else None,
        "KeyManagementServiceMachine": view.kms.machine if kms_row else None,
        "KeyManagementServicePort": view.kms.port if kms_row else 0,
        "KeyManagementServiceProductKeyID": product.kms_epid if activated_kms else None,
        "LicenseFamily": sku.license_family,
        "LicenseStatus": view.license_status,
        "LicenseStatusReason": view.reason & 0xFFFFFFFF,
        "MachineURL": urls.get("MachineURL"),
        "Name": sku.name,
        "OfflineInstallationId": installation_id(key, product.service.cmid) if keyed else None,
        "PartialProductKey": view.partial_key,
        "ProcessorURL": urls.get("ProcessorURL"),
        "ProductKeyChannel": sku.product_key_channel if keyed else None,
        "ProductKeyID": product_key_id(key, m.os, language=m.locale.os_language) if keyed else None,
        "ProductKeyID2": product_key_id(key, m.os, "00330", m.locale.os_language) if keyed else None,
        "ProductKeyURL": urls.get("ProductKeyURL"),
        "RemainingAppReArmCount": product.sku_rearm if not windows else NONE32,
        "RemainingSkuReArmCount": product.sku_rearm,
        "TrustedTime": m.local_now() if keyed and view.license_status != 0 else None,
        "UseLicenseURL": urls.get("UseLicenseURL"),
        "ValidationURL": urls.get("ValidationURL"),
        "VLActivationInterval": product.service.activation_interval if kms_row else 0,
        "VLActivationType": 2 if activated_kms else 0,
        "VLRenewalInterval": product.service.renewal_interval if kms_row else 0,
    }
    return values


def _products(m: Machine, ospp: bool) -> list[dict[str, CimValue]]:
    lic = m.licensing
    views = lic.views(lic.ospp_products() if ospp else lic.spp_products())
    return [product_values(m, v) for v in views]


# Win32_OperatingSystem properties that are the same on every modelled PC
_OS_FIXED: dict[str, CimValue] = {
    "BootDevice": "\\Device\\HarddiskVolume1",
    "BuildType": "Multiprocessor Free",
    "CreationClassName": "Win32_OperatingSystem",
    "CSCreationClassName": "Win32_ComputerSystem",
    "DataExecutionPrevention_32BitApplications": True,
    "DataExecutionPrevention_Available": True,
    "DataExecutionPrevention_Drivers": True,
    "Debug": False,
    "Description": "",
    "Distributed": False,
    "EncryptionLevel": 256,
    "ForegroundApplicationBoost": 2,
    "FreeSpaceInPagingFiles": 1_310_720,
    "Manufacturer": "Microsoft Corporation",
    "MaxNumberOfProcesses": NONE32,
    "MaxProcessMemorySize": 137_438_953_344,
    "NumberOfProcesses": 142,
    "NumberOfUsers": 2,
    "Organization": "",
    "OSArchitecture": "64-bit",
    "OSType": 18,
    "OtherTypeDescription": None,
    "PortableOperatingSystem": False,
    "Primary": True,
    "RegisteredUser": "Windows User",
    "ServicePackMinorVersion": 0,
    "SizeStoredInPagingFiles": 1_310_720,
    "Status": "OK",
    "SuiteMask": 272,
    "SystemDevice": "\\Device\\HarddiskVolume2",
    "SystemDrive": "C:",
}


def _os_values(m: Machine) -> list[dict[str, CimValue]]:
    os = m.os
    windir = "C:\\Windows" if os.is_win7 else "C:\\WINDOWS"
    mem_kb = m.hardware.memory_bytes // 1024
    return [
        {
            **_OS_FIXED,
            "BuildNumber": os.build,
            "Caption": m.os_caption,
            "CodeSet": str(m.locale.ansi_codepage),
            "CountryCode": m.locale.country_code,
            "CSDVersion": "Service Pack 1" if os.is_win7 else None,
            "CSName": m.computer_name,
            "CurrentTimeZone": m.utc_offset_minutes(),
            "DataExecutionPrevention_SupportPolicy": 2 if os.product_type == 1 else 3,
            "FreePhysicalMemory": mem_kb * 55 // 100,
            "FreeVirtualMemory": mem_kb * 60 // 100,
            "InstallDate": m.to_local(m.install_date),
            "LastBootUpTime": m.to_local(m.boot_time),
            "LocalDateTime": m.local_now(),
            "Locale": m.locale.lcid,
            "MUILanguages": m.locale.mui_languages,
            "Name": f"{m.os_caption}|{windir}|\\Device\\Harddisk0\\Partition2",
            "NumberOfLicensedUsers": None if os.product_type == 1 else 0,
            "OperatingSystemSKU": os.sku_number,
            "OSLanguage": m.locale.os_language,
            "OSProductSuite": 256 if os.product_type == 1 else 272,
            "ProductType": os.product_type,
            "SerialNumber": m.os_serial,
            "ServicePackMajorVersion": 1 if os.is_win7 else 0,
            "SystemDirectory": f"{windir}\\system32",
            "TotalVirtualMemorySize": mem_kb + 1_310_720,
            "TotalVisibleMemorySize": mem_kb,
            "Version": os.version,
            "WindowsDirectory": windir,
        }
    ]


def _cs_values(m: Machine) -> list[dict[str, CimValue]]:
    hw = m.hardware
    tz = m.tz
    server = m.os.product_type != 1
    return [
        {
            "AdminPasswordStatus": 3,
            "AutomaticManagedPagefile": True,
            "AutomaticResetBootOption": True,
            "AutomaticResetCapability": True,
            "BootupState": "Normal boot",
            "Caption": m.computer_name,
            "ChassisBootupState": 3,
            "CreationClassName": "Win32_ComputerSystem",
            "CurrentTimeZone": m.utc_offset_minutes(),
            "DaylightInEffect": in_dst(tz, m.pc_utc_now()),
            "Description": "AT/AT COMPATIBLE",
            "DNSHostName": m.computer_name,
            "Domain": "WORKGROUP",
            "DomainRole": 2 if server else 0,
            "EnableDaylightSavingsTime": True,
            "HypervisorPresent": False,
            "Manufacturer": hw.manufacturer,
            "Model": hw.model,
            "Name": m.computer_name,
            "NetworkServerModeEnabled": True,
            "NumberOfLogicalProcessors": hw.logical_processors,
            "NumberOfProcessors": 1,
            "PartOfDomain": False,
            "PCSystemType": 4 if server else 1,
            "PowerState": 0,
            "PrimaryOwnerName": "Windows User",
            "Roles": ("LM_Workstation", "LM_Server", "NT")
            if not server
            else ("LM_Workstation", "LM_Server", "NT", "Server_NT"),
            "Status": "OK",
            "SystemFamily": hw.family,
            "SystemSKUNumber": hw.sku_number,
            "SystemType": "x64-based PC",
            "ThermalState": 3,
            "TotalPhysicalMemory": hw.memory_bytes,
            "UserName": None if server else f"{m.computer_name}\\Student",
            "WakeUpType": 6,
            "Workgroup": "WORKGROUP",
        }
    ]


def _tz_values(m: Machine) -> list[dict[str, CimValue]]:
    tz = m.tz
    rule = tz.dst
    return [
        {
            "Bias": tz.bias,
            "Caption": tz.caption,
            "DaylightBias": -60,
            "DaylightDay": rule.start_week if rule else 0,
            "DaylightDayOfWeek": 0,
            "DaylightHour": rule.start_hour if rule else 0,
            "DaylightMillisecond": 0,
            "DaylightMinute": 0,
            "DaylightMonth": rule.start_month if rule else 0,
            "DaylightName": tz.daylight_name,
            "DaylightSecond": 0,
            "DaylightYear": 0,
            "Description": tz.caption,
            "SettingID": None,
            "StandardBias": 0,
            "StandardDay": rule.end_week if rule else 0,
            "StandardDayOfWeek": 0,
            "StandardHour": rule.end_hour if rule else 0,
            "StandardMillisecond": 0,
            "StandardMinute": 0,
            "StandardMonth": rule.end_month if rule else 0,
            "StandardName": tz.standard_name,
            "StandardSecond": 0,
            "StandardYear": 0,
        }
    ]


def _bios_values(m: Machine) -> list[dict[str, CimValue]]:
    hw = m.hardware
    name = hw.bios_version
    return [
        {
            "BiosCharacteristics": (7, 9, 11, 12, 15, 16, 19, 26, 27, 28, 29, 32, 33, 40, 42, 43),
            "BIOSVersion": (hw.bios_acpi_version, name, hw.bios_vendor_string),
            "BuildNumber": None,
            "Caption": name,
            "CodeSet": None,
            "CurrentLanguage": "en|US|iso8859-1",
            "Description": name,
            "EmbeddedControllerMajorVersion": 255,
            "EmbeddedControllerMinorVersion": 255,
            "IdentificationCode": None,
            "InstallableLanguages": 1,
            "InstallDate": None,
            "LanguageEdition": None,
            "ListOfLanguages": ("en|US|iso8859-1",),
            "Manufacturer": hw.bios_manufacturer,
            "Name": name,
            "OtherTargetOS": None,
            "PrimaryBIOS": True,
            "ReleaseDate": hw.bios_date,
            "SerialNumber": hw.serial,
            "SMBIOSBIOSVersion": hw.smbios_version,
            "SMBIOSMajorVersion": 3,
            "SMBIOSMinorVersion": 1 if not m.os.is_win7 else 0,
            "SMBIOSPresent": True,
            "SoftwareElementID": name,
            "SoftwareElementState": 3,
            "Status": "OK",
            "SystemBiosMajorVersion": 1,
            "SystemBiosMinorVersion": 6,
            "TargetOperatingSystem": 0,
            "Version": hw.bios_acpi_version,
        }
    ]


# The kernel debug adapter every Windows 10 PC lists first (not connected, no addresses)
_KDNIC_ROW: dict[str, CimValue] = {
    "Caption": "[00000000] Microsoft Kernel Debug Network Adapter",
    "DatabasePath": None,
    "DefaultIPGateway": None,
    "Description": "Microsoft Kernel Debug Network Adapter",
    "DHCPEnabled": True,
    "DHCPLeaseExpires": None,
    "DHCPLeaseObtained": None,
    "DHCPServer": None,
    "DNSDomain": None,
    "DNSDomainSuffixSearchOrder": None,
    "DNSEnabledForWINSResolution": None,
    "DNSHostName": None,
    "DNSServerSearchOrder": None,
    "DomainDNSRegistrationEnabled": None,
    "FullDNSRegistrationEnabled": None,
    "GatewayCostMetric": None,
    "Index": 0,
    "InterfaceIndex": 2,
    "IPAddress": None,
    "IPConnectionMetric": None,
    "IPEnabled": False,
    "IPFilterSecurityEnabled": None,
    "IPSubnet": None,
    "MACAddress": None,
    "ServiceName": "kdnic",
    "SettingID": "{E9BFA2C1-5AC8-4D5B-9A62-0C5E1A8E2A11}",
    "TcpipNetbiosOptions": None,
    "WINSEnableLMHostsLookup": None,
    "WINSPrimaryServer": None,
}


def _nac_values(m: Machine) -> list[dict[str, CimValue]]:
    hw = m.hardware
    return [
        dict(_KDNIC_ROW),
        {
            "Caption": f"[00000001] {hw.nic}",
            "DatabasePath": "%SystemRoot%\\System32\\drivers\\etc",
            "DefaultIPGateway": (m.gateway,),
            "Description": hw.nic,
            "DHCPEnabled": False,
            "DHCPLeaseExpires": None,
            "DHCPLeaseObtained": None,
            "DHCPServer": None,
            "DNSDomain": None,
            "DNSDomainSuffixSearchOrder": (),
            "DNSEnabledForWINSResolution": False,
            "DNSHostName": m.computer_name,
            "DNSServerSearchOrder": (m.gateway,),
            "DomainDNSRegistrationEnabled": False,
            "FullDNSRegistrationEnabled": True,
            "GatewayCostMetric": (0,),
            "Index": 1,
            "InterfaceIndex": 12,
            "IPAddress": (m.address,),
            "IPConnectionMetric": 25,
            "IPEnabled": True,
            "IPFilterSecurityEnabled": False,
            "IPSubnet": ("255.255.255.0",),
            "MACAddress": m.config.mac,
            "ServiceName": hw.nic_service,
            "SettingID": m.nic_guid,
            "TcpipNetbiosOptions": 0,
            "WINSEnableLMHostsLookup": True,
            "WINSPrimaryServer": None,
        },
    ]


def _drop(props: tuple[PropDef, ...], names: set[str]) -> tuple[PropDef, ...]:
    return tuple(p for p in props if p[0].lower() not in names)


def _sls(m: Machine) -> list[dict[str, CimValue]]:
    return _service_values(m, ospp=False)


def _ospp_service(m: Machine) -> list[dict[str, CimValue]]:
    return _service_values(m, ospp=True)


def _slp(m: Machine) -> list[dict[str, CimValue]]:
    return _products(m, ospp=False)


def _ospp_products(m: Machine) -> list[dict[str, CimValue]]:
    return _products(m, ospp=True)


@lru_cache(maxsize=8)
def class_table(win7: bool, ospp: bool) -> dict[str, WmiClass]:
    """The classes a PC has: Windows 7 drops Windows 8+ licensing properties; OSPP classes only with Office
    on Windows 7."""
    sls_props = _p(_SLS_PROPS)
    slp_props = _p(_SLP_PROPS)
    if win7:
        sls_props = _drop(sls_props, _SLS_WIN8_ONLY)
        slp_props = _drop(slp_props, _SLP_WIN8_ONLY)
    classes = [
        WmiClass("SoftwareLicensingService", sls_props, ("Version",), _sls, _SERVICE_METHODS, singleton=True),
        WmiClass("SoftwareLicensingProduct", slp_props, ("ID",), _slp, _PRODUCT_METHODS),
        WmiClass("Win32_OperatingSystem", _p(_OS_PROPS), ("Name",), _os_values, _os_methods(), singleton=True),
        WmiClass("Win32_ComputerSystem", _p(_CS_PROPS), ("Name",), _cs_values, singleton=True),
        WmiClass("Win32_TimeZone", _p(_TZ_PROPS), ("StandardName",), _tz_values, singleton=True),
        WmiClass(
            "Win32_BIOS",
            _p(_BIOS_PROPS),
            ("Name", "SoftwareElementID", "SoftwareElementState", "TargetOperatingSystem", "Version"),
            _bios_values,
            singleton=True,
        ),
        WmiClass("Win32_Service", _p(_SERVICE_PROPS), ("Name",), services._services, _services_methods()),
        WmiClass("Win32_NetworkAdapterConfiguration", _p(_NAC_PROPS), ("Index",), _nac_values),
    ]
    classes += _extra_classes()
    if ospp:
        service_methods = tuple(mth for mth in _SERVICE_METHODS if mth != "ReArmWindows")
        classes += [
            WmiClass(
                "OfficeSoftwareProtectionService",
                _p(_OSPP_SERVICE_PROPS),
                ("Version",),
                _ospp_service,
                service_methods,
                singleton=True,
            ),
            WmiClass(
                "OfficeSoftwareProtectionProduct", _p(_OSPP_PRODUCT_PROPS), ("ID",), _ospp_products, _PRODUCT_METHODS
            ),
        ]
    return {c.name.lower(): c for c in classes}


def _os_methods() -> tuple[str, ...]:
    from orchestrator.lab.reboot import OS_METHODS

    return OS_METHODS


def _services_methods() -> tuple[str, ...]:
    return services.SERVICE_METHODS


def _extra_classes() -> list[WmiClass]:
    """Classes modelled in their own modules (StdRegProv, CIM_DataFile, Win32_Directory, Win32_ServerFeature)."""
    from orchestrator.lab import features, files, registry

    return [
        WmiClass("StdRegProv", (), (), lambda _m: [], registry.REG_METHODS),
        WmiClass("CIM_DataFile", _p(files.DATAFILE_PROPS), ("Name",), files.datafile_rows),
        WmiClass("Win32_Directory", _p(files.DIRECTORY_PROPS), ("Name",), files.directory_rows),
        WmiClass("Win32_ServerFeature", _p(features.FEATURE_PROPS), ("ID",), features.rows),
    ]


def normalise_namespace(namespace: str) -> str:
    ns = namespace.replace("\\", "/").strip("/").lower()
    if ns != NAMESPACE:
        raise WmiError(WBEM_E_INVALID_NAMESPACE, "Invalid namespace", kind="invalid_class")
    return ns


def license_status_name(status: int) -> str:
    return LICENSE_STATUS_NAMES[status] if 0 <= status < len(LICENSE_STATUS_NAMES) else "Unknown"


def select_instances(m: Machine, cls: WmiClass, selectors: dict[str, str]) -> list[dict[str, CimValue]]:
    """Instances of ``cls`` matching WS-Man selectors (all given selectors must match, case-insensitively)."""
    rows = cls.builder(m)
    if not selectors:
        return rows
    schema = cls.schema
    out = []
    for row in rows:
        ok = True
        for key, wanted in selectors.items():
            entry = schema.get(key.lower())
            if entry is None:
                raise WmiError(
                    WSMAN_INVALID_SELECTORS,
                    "The WS-Management service cannot process the request "
                    "because the request contained invalid selectors for the resource.",
                    kind="invalid_parameter",
                )
            if not _selector_matches(row.get(entry[0]), wanted):
                ok = False
                break
        if ok:
            out.append(row)
    return out


def _selector_matches(value: Any, wanted: str) -> bool:
    if value is None:
        return wanted == ""
    if isinstance(value, bool):
        return wanted.strip().lower() == ("true" if value else "false")
    if isinstance(value, int):
        try:
            return int(wanted.strip()) == value
        except ValueError:
            return False
    return str(value).lower() == wanted.strip().strip("{}").lower() or str(value).lower() == wanted.strip().lower()
