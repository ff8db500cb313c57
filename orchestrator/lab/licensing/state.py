"""The licensing state of one PC: the service settings (SPP/OSPP), each application's keyed SKU and timer
phase, and the read-only views the WMI classes and slmgr show."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover
    pass

from orchestrator.lab.licensing.catalogue import Sku
from orchestrator.lab.licensing.codes import (
    ACTIVATION_INTERVAL,
    OOT_GRACE_DAYS,
    RENEWAL_INTERVAL,
    SL_E_GRACE_TIME_EXPIRED,
    SL_E_PKEY_NOT_INSTALLED,
    SL_I_OOB_GRACE_PERIOD,
    SL_I_OOT_GRACE_PERIOD,
)

Phase = Literal["none", "oob", "kms", "oot", "notification", "permanent"]


@dataclass(slots=True)
class KmsSetting:
    machine: str | None = None
    port: int = 0  # 0 = not set (1688 is used)


@dataclass(slots=True)
class ServiceState:
    """SoftwareLicensingService (SPP) or OfficeSoftwareProtectionService (OSPP) settings."""

    version: str
    cmid: str
    kms: KmsSetting = field(default_factory=KmsSetting)
    host_caching: bool = True
    lookup_domain: str | None = None
    rearm_count: int = 1001
    activation_interval: int = ACTIVATION_INTERVAL
    renewal_interval: int = RENEWAL_INTERVAL


@dataclass(slots=True)
class ProductLicense:
    """One application (Windows or Office): its SKU rows, the installed key and the timer of the keyed SKU."""

    app: Literal["windows", "office"]
    kms_product: str  # windows | server | office (what the KMS host counts)
    skus: tuple[Sku, ...]
    service: ServiceState
    key: str | None = None
    key_sku: Sku | None = None
    phase: Phase = "none"
    phase_end: datetime | None = None
    reason: int = SL_E_PKEY_NOT_INSTALLED
    oob_end: datetime | None = None  # machine-wide OOB grace end (used when a new key is installed)
    blocked: bool = False
    corrupt: bool = False
    slic_without_marker: bool = False
    own_keys: dict[str, Sku] = field(default_factory=dict)  # retail/OEM/MAK keys this PC shipped with
    permanent_keys: set[str] = field(default_factory=set)  # keys that were permanently activated
    overrides: dict[str, KmsSetting] = field(default_factory=dict)  # product-level KMS settings, per SKU id
    kms_ip: str | None = None  # DiscoveredKeyManagementServiceMachineIpAddress after a KMS activation
    kms_epid: str | None = None  # KeyManagementServiceProductKeyID
    last_activation: datetime | None = None
    last_error: int | None = None
    sku_rearm: int = 1001
    office_version: int | None = None

    # -- timers ---------------------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        for _ in range(4):
            if self.phase_end is None or now < self.phase_end:
                return
            if self.phase == "kms":
                self.phase, self.reason = "oot", SL_I_OOT_GRACE_PERIOD
                self.phase_end = self.phase_end + timedelta(days=OOT_GRACE_DAYS)
            elif self.phase in ("oob", "oot"):
                self.phase, self.reason, self.phase_end = "notification", SL_E_GRACE_TIME_EXPIRED, None
            else:
                return

    def status(self) -> int:
        return {"none": 0, "oob": 2, "kms": 1, "oot": 3, "notification": 5, "permanent": 1}[self.phase]

    def grace_minutes(self, now: datetime) -> int:
        if self.phase_end is None or self.phase in ("permanent", "none", "notification"):
            return 0
        return max(0, math.ceil((self.phase_end - now).total_seconds() / 60))

    def start_oob_or_notification(self, now: datetime) -> None:
        if self.oob_end is not None and now < self.oob_end:
            self.phase, self.phase_end, self.reason = "oob", self.oob_end, SL_I_OOB_GRACE_PERIOD
        else:
            self.phase, self.phase_end, self.reason = "notification", None, SL_E_GRACE_TIME_EXPIRED

    def sku(self, sku_id: str) -> Sku | None:
        wanted = sku_id.strip().strip("{}").lower()
        for s in self.skus:
            if s.id == wanted:
                return s
        return None

    def kms_setting(self, sku: Sku) -> KmsSetting:
        """Effective KMS host/port for a SKU: the product-level override, else the service setting."""
        own = self.overrides.get(sku.id)
        machine = own.machine if own and own.machine else self.service.kms.machine
        port = own.port if own and own.port else self.service.kms.port
        return KmsSetting(machine, port)


@dataclass(frozen=True, slots=True)
class SkuView:
    """Everything WMI shows about one SKU row (computed at read time)."""

    product: ProductLicense
    sku: Sku
    has_key: bool
    partial_key: str | None
    license_status: int
    reason: int
    grace_minutes: int
    kms: KmsSetting
    service: ServiceState


@dataclass(frozen=True, slots=True)
class ActivationPlan:
    product: ProductLicense
    sku: Sku
    address: str | None  # None = resolved as unreachable without any traffic
    port: int
    request: dict[str, Any]
    host_text: str
