"""The licensing engine of one PC (``Licensing``): installs and removes keys, sets the KMS host, activates
(one request to the lab KMS host on loopback), rearms, and moves the timers on the lab clock."""

from __future__ import annotations

import asyncio
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from orchestrator.knowledge.license_status import LICENSE_STATUS_NAMES
from orchestrator.lab.kms import KmsUnreachable, is_loopback, kms_activate, parse_hresult
from orchestrator.lab.provider import WmiError

if TYPE_CHECKING:  # pragma: no cover
    from orchestrator.lab.spec import LabHostConfig, OfficeSpec
    from orchestrator.lab.world import LabWorld

from orchestrator.lab.licensing.catalogue import (
    _GVLK_BY_KEY,
    _KEY_CHARS,
    Sku,
    _office_skus,
    _windows_skus,
    find_gvlk,
    key_shape_ok,
    office_gvlk,
    os_info,
    windows_gvlk,
)
from orchestrator.lab.licensing.codes import (
    ACTIVATION_INTERVAL,
    DEFAULT_KMS_PORT,
    DNS_ERROR_RCODE_NAME_ERROR,
    E_ACCESSDENIED,
    E_INVALID_DATA,
    ERROR_INTERNET_NAME_NOT_RESOLVED,
    OOB_GRACE_DAYS,
    RAISED_CODES,
    RENEWAL_INTERVAL,
    SL_E_CHPA_PRODUCT_KEY_BLOCKED,
    SL_E_INVALID_PRODUCT_KEY,
    SL_E_MAX_REARM_REACHED,
    SL_E_PKEY_NOT_INSTALLED,
    SL_E_PUBLISHING_LICENSE_NOT_INSTALLED,
    SL_E_SLP_MISSING_ACPI_SLIC,
    SL_E_VL_BINDING_SERVICE_UNAVAILABLE,
    SL_E_VL_MACHINE_NOT_BOUND,
    SL_E_VL_NOT_WINDOWS_SLP,
    SL_I_PRODUCT_USER_RIGHT,
    VALIDITY_MINUTES,
    fail,
)
from orchestrator.lab.licensing.state import ActivationPlan, KmsSetting, ProductLicense, ServiceState, SkuView


class Licensing:
    """All licensing state of one PC. Not thread-safe by itself: ``Machine`` serialises access with its lock."""

    def __init__(self, config: LabHostConfig, world: LabWorld) -> None:
        self.world = world
        self.pc_name = config.computer_name
        self.lab_name = config.name  # the PC's name in the spec (what lab/timing.py draws by)
        self.os = os_info(config.os)
        self.clock_skew_minutes = config.clock_skew_minutes
        now = world.clock.now()
        cmid = world.cloned_cmid if config.cloned_cmid else world.new_guid()
        self.spp = ServiceState(version=self.os.spp_version, cmid=cmid, rearm_count=self.os.rearm_count)
        self.ospp: ServiceState | None = None
        if config.office is not None and self.os.is_win7:
            office_cmid = world.cloned_office_cmid if config.cloned_cmid else world.new_guid()
            self.ospp = ServiceState(version="15.0.4420.1017", cmid=office_cmid, rearm_count=5)
        kms_host = (config.kms_host or "none").strip()
        if kms_host.lower() == "lab":
            self._set_all_services(*world.kms_endpoint())
        elif kms_host.lower() not in ("none", ""):
            self._set_all_services(*split_host_port(kms_host))
        self.windows = self._build_windows(config, now)
        self.office: ProductLicense | None = None
        if config.office is not None:
            self.office = self._build_office(config.office, self.ospp or self.spp, now)

    def _set_all_services(self, host: str, port: int) -> None:
        for service in self.services():
            service.kms = KmsSetting(host, 0 if port == DEFAULT_KMS_PORT else port)

    # -- construction ---------------------------------------------------------------------------------
    def _build_windows(self, config: LabHostConfig, now: datetime) -> ProductLicense:
        skus = _windows_skus(self.os, config.edition_id, config.family)
        product = ProductLicense(
            app="windows",
            kms_product="server" if config.family == "server" else "windows",
            skus=skus,
            service=self.spp,
            sku_rearm=self.os.rearm_count,
        )
        channel = config.windows_channel
        by_channel = {s.channel: s for s in skus}
        gvlk = windows_gvlk(self.os.generation, config.edition_id)
        if channel in ("volume", "oem_slic") and gvlk is not None:
            sku, key = by_channel["VOLUME_KMSCLIENT"], gvlk.key
        elif channel == "mak" and gvlk is not None:
            sku, key = by_channel["VOLUME_MAK"], self._synthetic_key("mak")
        elif channel in ("oem", "oem_slic"):
            sku, key = by_channel["OEM_SLP" if self.os.is_win7 else "OEM_DM"], self._synthetic_key("oem")
        else:  # retail, or a volume channel on an edition without volume licensing (Home, Ultimate)
            sku, key = by_channel["RETAIL"], self._synthetic_key("retail")
        product.key, product.key_sku = key, sku
        if not sku.is_kms_client:
            product.own_keys[key] = sku
        product.blocked = config.blocked_key
        product.slic_without_marker = channel == "oem_slic"
        self._initial_state(product, sku, config.windows_state, config.days_left, now)
        return product

    def _build_office(self, office: OfficeSpec, service: ServiceState, now: datetime) -> ProductLicense:
        skus = _office_skus(office)
        product = ProductLicense(
            app="office", kms_product="office", skus=skus, service=service, sku_rearm=5, office_version=office.version
        )
        sku = skus[0]
        key = office_gvlk(office.version).key if sku.is_kms_client else self._synthetic_key("office")
        product.key, product.key_sku = key, sku
        if not sku.is_kms_client:
            product.own_keys[key] = sku
        product.corrupt = office.state == "corrupt"
        state = "unlicensed" if office.state == "corrupt" else office.state
        self._initial_state(product, sku, state, office.days_left if office.days_left is not None else 180, now)
        return product

    def _initial_state(self, product: ProductLicense, sku: Sku, state: str, days_left: int, now: datetime) -> None:
        product.oob_end = now + timedelta(days=min(days_left, OOB_GRACE_DAYS))
        if state == "unlicensed":
            product.start_oob_or_notification(now)
            return
        product.oob_end = now - timedelta(days=1)  # a licensed PC consumed its OOB grace long ago
        if sku.is_kms_client:
            days = days_left if state == "licensed" or days_left < 180 else 10
            product.phase, product.reason = "kms", SL_I_PRODUCT_USER_RIGHT
            product.phase_end = now + timedelta(days=days)
            product.kms_epid = self.world.kms_host_epid
            product.last_activation = product.phase_end - timedelta(minutes=VALIDITY_MINUTES)
            host = self.spp.kms.machine or self.world.kms_address
            product.kms_ip = host if _is_ip(host) else None
        elif sku.channel == "TIMEBASED_SUB":
            product.phase, product.reason = "kms", 0  # time-based: grace counts down, then OOT like KMS
            product.phase_end = now + timedelta(days=days_left if days_left else 30)
        else:
            product.phase, product.phase_end, product.reason = "permanent", None, 0
            if product.key:
                product.permanent_keys.add(product.key)
        product.tick(now)

    def _synthetic_key(self, kind: str) -> str:
        while True:
            groups = [
                "".join(_KEY_CHARS[self.world.randint(0, len(_KEY_CHARS) - 1)] for _ in range(5)) for _ in range(5)
            ]
            key = "-".join(groups)
            if key not in _GVLK_BY_KEY:
                return key

    # -- lookups ----------------------------------------------------------------------------------------
    def services(self) -> list[ServiceState]:
        return [self.spp] + ([self.ospp] if self.ospp is not None else [])

    def products(self) -> list[ProductLicense]:
        return [self.windows] + ([self.office] if self.office is not None else [])

    def spp_products(self) -> list[ProductLicense]:
        """Products whose rows appear in SoftwareLicensingProduct."""
        return [p for p in self.products() if p.service is self.spp]

    def ospp_products(self) -> list[ProductLicense]:
        return [p for p in self.products() if self.ospp is not None and p.service is self.ospp]

    def views(self, products: list[ProductLicense]) -> list[SkuView]:
        now = self.world.clock.now()
        out = []
        for product in products:
            product.tick(now)
            for sku in product.skus:
                out.append(self._view(product, sku, now))
        return out

    def _view(self, product: ProductLicense, sku: Sku, now: datetime) -> SkuView:
        keyed = product.key_sku is sku and product.key is not None
        if keyed:
            status, reason, grace = product.status(), product.reason, product.grace_minutes(now)
        else:
            status, reason, grace = 0, SL_E_PKEY_NOT_INSTALLED, 0
        return SkuView(
            product=product,
            sku=sku,
            has_key=keyed,
            partial_key=product.key[-5:] if keyed and product.key else None,
            license_status=status,
            reason=reason,
            grace_minutes=grace,
            kms=product.kms_setting(sku),
            service=product.service,
        )

    def find(self, sku_id: str, service: ServiceState | None = None) -> tuple[ProductLicense, Sku]:
        for product in self.products():
            if service is not None and product.service is not service:
                continue
            sku = product.sku(sku_id)
            if sku is not None:
                return product, sku
        raise WmiError(0x80041002, "Not found", kind="not_found")

    # -- methods (SoftwareLicensingService / OfficeSoftwareProtectionService) -----------------------------
    def install_product_key(self, service: ServiceState, key: str, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        key = key.strip().upper()
        if not key_shape_ok(key):
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        now = self.world.clock.now()
        gvlk = find_gvlk(key)
        for product in self.products():
            if product.service is not service:
                continue
            if key in product.own_keys:
                self._install(product, product.own_keys[key], key, now)
                return
        if gvlk is None:
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        if gvlk.app == "windows":
            product = self.windows
            if service is not product.service:
                raise fail(SL_E_INVALID_PRODUCT_KEY)
            target = next((s for s in product.skus if s.is_kms_client), None)
            if target is None or gvlk.generation != self.os.generation or gvlk.edition != target.license_family:
                raise fail(SL_E_INVALID_PRODUCT_KEY)
            self._install(product, target, key, now)
            return
        office = self.office
        if office is None or office.service is not service or str(office.office_version) != gvlk.generation:
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        target = next((s for s in office.skus if s.is_kms_client), None)
        if target is None:
            # an OEM/retail/subscription Office has no VL license files to hold a GVLK (seed: 0xC004F017)
            raise fail(SL_E_PUBLISHING_LICENSE_NOT_INSTALLED)
        if target.id != gvlk.sku_id:
            raise fail(SL_E_INVALID_PRODUCT_KEY)
        self._install(office, target, key, now)

    def _install(self, product: ProductLicense, sku: Sku, key: str, now: datetime) -> None:
        product.tick(now)
        if product.key == key and product.key_sku is sku:
            return  # the same key again: SPP keeps the license as it is
        product.key, product.key_sku = key, sku
        product.blocked = False
        product.kms_ip = None
        product.kms_epid = None
        if key in product.permanent_keys:
            product.phase, product.phase_end, product.reason = "permanent", None, 0
        else:
            product.start_oob_or_notification(now)

    def set_kms_machine(self, target: ServiceState | tuple[ProductLicense, Sku], name: str, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        name = name.strip()
        if not name or len(name) > 255:
            raise fail(E_INVALID_DATA)
        setting = self._setting(target)
        setting.machine = name

    def set_kms_port(self, target: ServiceState | tuple[ProductLicense, Sku], port_text: str, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        try:
            port = int(str(port_text).strip())
        except ValueError:
            raise fail(E_INVALID_DATA) from None
        if not 0 < port < 65536:
            raise fail(E_INVALID_DATA)
        self._setting(target).port = port

    def clear_kms_machine(self, target: ServiceState | tuple[ProductLicense, Sku], admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        self._setting(target).machine = None

    def clear_kms_port(self, target: ServiceState | tuple[ProductLicense, Sku], admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        self._setting(target).port = 0

    def set_host_caching(self, service: ServiceState, disable: bool, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        service.host_caching = not disable

    def rearm(self, service: ServiceState, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        if service.rearm_count <= 0:
            raise fail(SL_E_MAX_REARM_REACHED)
        service.rearm_count -= 1
        now = self.world.clock.now()
        for product in self.products():
            if product.service is service and product.phase in ("oob", "notification"):
                product.oob_end = now + timedelta(days=OOB_GRACE_DAYS)
                product.start_oob_or_notification(now)

    @staticmethod
    def _setting(target: ServiceState | tuple[ProductLicense, Sku]) -> KmsSetting:
        if isinstance(target, ServiceState):
            return target.kms
        product, sku = target
        return product.overrides.setdefault(sku.id, KmsSetting())

    # -- methods (SoftwareLicensingProduct / OfficeSoftwareProtectionProduct) ------------------------------
    def uninstall_product_key(self, product: ProductLicense, sku: Sku, admin: bool) -> None:
        if not admin:
            raise fail(E_ACCESSDENIED)
        if product.key_sku is not sku or product.key is None:
            raise fail(SL_E_PKEY_NOT_INSTALLED)
        product.key, product.key_sku = None, None
        product.phase, product.phase_end, product.reason = "none", None, SL_E_PKEY_NOT_INSTALLED
        product.kms_ip = product.kms_epid = None

    def prepare_activation(self, product: ProductLicense, sku: Sku, admin: bool) -> ActivationPlan | None:
        """Checks that need no network. Returns None when there is nothing to do (already permanently
        licensed), a plan for a KMS request otherwise; raises ``WmiError`` for local failures."""
        now = self.world.clock.now()
        product.tick(now)
        try:
            if not admin:
                raise fail(E_ACCESSDENIED)
            if product.key_sku is not sku or product.key is None:
                raise fail(SL_E_PKEY_NOT_INSTALLED)
            if product.app == "office" and product.corrupt:
                raise fail(SL_E_VL_MACHINE_NOT_BOUND)
            if product.blocked:
                raise fail(SL_E_CHPA_PRODUCT_KEY_BLOCKED)
            if not sku.is_kms_client:
                if product.status() == 1:
                    return None
                if product.app == "office":
                    raise fail(SL_E_PUBLISHING_LICENSE_NOT_INSTALLED)
                if sku.channel == "VOLUME_MAK":
                    raise fail(ERROR_INTERNET_NAME_NOT_RESOLVED)
                raise fail(SL_E_SLP_MISSING_ACPI_SLIC)
            if product.app == "windows" and self.os.is_win7 and product.slic_without_marker:
                raise fail(SL_E_VL_NOT_WINDOWS_SLP)
            setting = product.kms_setting(sku)
            if not setting.machine:
                raise fail(DNS_ERROR_RCODE_NAME_ERROR)
        except WmiError as exc:
            product.last_error = exc.hresult
            raise
        port = setting.port or DEFAULT_KMS_PORT
        address = resolve_kms_address(setting.machine)
        pc_time = now + timedelta(minutes=self.clock_skew_minutes)
        request = {
            "v": 1,
            "op": "activate",
            "cmid": product.service.cmid,
            "product": product.kms_product,
            "sku": sku.id,
            "client_time": pc_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pc": self.pc_name,
        }
        return ActivationPlan(product, sku, address, port, request, setting.machine)

    def complete_activation(self, plan: ActivationPlan, answer: dict[str, Any] | None) -> None:
        """Apply the KMS answer (None = unreachable). Raises ``WmiError`` on failure."""
        product = plan.product
        if answer is None:
            product.last_error = SL_E_VL_BINDING_SERVICE_UNAVAILABLE
            raise fail(SL_E_VL_BINDING_SERVICE_UNAVAILABLE)
        if not answer.get("ok"):
            try:
                code = parse_hresult(str(answer.get("hresult", "")))
            except ValueError:
                code = SL_E_VL_BINDING_SERVICE_UNAVAILABLE
            if code not in RAISED_CODES or code == E_INVALID_DATA:
                code = SL_E_VL_BINDING_SERVICE_UNAVAILABLE
            product.last_error = code
            raise fail(code)
        now = self.world.clock.now()
        validity = int(answer.get("validity_minutes", VALIDITY_MINUTES))
        product.phase, product.reason = "kms", SL_I_PRODUCT_USER_RIGHT
        product.phase_end = now + timedelta(minutes=validity)
        product.kms_ip = plan.address
        product.kms_epid = str(answer.get("host_epid", "")) or None
        product.last_activation = now
        product.last_error = None
        service = product.service
        service.renewal_interval = int(answer.get("renewal_minutes", RENEWAL_INTERVAL))
        service.activation_interval = int(answer.get("activation_interval_minutes", ACTIVATION_INTERVAL))

    async def activate(self, product: ProductLicense, sku: Sku, admin: bool, lock: threading.RLock) -> None:
        """Activate one SKU: local checks under ``lock``, the KMS round trip without it, then the result."""
        with lock:
            plan = self.prepare_activation(product, sku, admin)
        if plan is None:
            return
        answer: dict[str, Any] | None = None
        if plan.address is not None:
            # lab/timing.py: the client-side wait for a host that never answers (the TCP connect timeout with
            # windows timing), and one KMS round trip when it does answer.
            timing = self.world.timing.pc(self.lab_name)
            try:
                answer = await kms_activate(plan.address, plan.port, plan.request, timing.kms_timeout_s)
            except KmsUnreachable:
                answer = None
            else:
                round_trip = timing.get("kms_round_trip")
                if round_trip > 0:
                    await asyncio.sleep(round_trip)
        with lock:
            self.complete_activation(plan, answer)

    # -- ground truth ---------------------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        now = self.world.clock.now()
        out = []
        for product in self.products():
            product.tick(now)
            sku = product.key_sku or next((s for s in product.skus if s.is_kms_client), product.skus[0])
            status = product.status() if product.key_sku else 0
            grace = product.grace_minutes(now) if product.key_sku else 0
            setting = product.kms_setting(sku)
            out.append(
                {
                    "product": product.kms_product,
                    "name": sku.name,
                    "activation_id": sku.id,
                    "channel": sku.product_key_channel if product.key_sku else None,
                    "description": sku.description,
                    "partial_key": product.key[-5:] if product.key and product.key_sku else None,
                    "license_status": status,
                    "license_status_name": LICENSE_STATUS_NAMES[status],
                    "license_status_reason": f"0x{product.reason & 0xFFFFFFFF:08X}",
                    "grace_minutes": grace,
                    "days_left": math.ceil(grace / 1440) if grace else 0,
                    "kms_host": setting.machine,
                    "kms_port": setting.port or (DEFAULT_KMS_PORT if setting.machine else 0),
                    "last_error": f"0x{product.last_error:08X}" if product.last_error is not None else None,
                    "cmid": product.service.cmid,
                    "blocked_key": product.blocked,
                    "corrupt": product.corrupt,
                }
            )
        return out


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def resolve_kms_address(name: str) -> str | None:
    """The address the lab would connect to for a KMS host name, or None when it is unreachable without any
    traffic (not loopback, or a DNS name the lab cannot resolve)."""
    text = name.strip()
    if text.lower() == "localhost":
        return "127.0.0.1"
    if _is_ip(text):
        host = text.strip("[]")
        return host if is_loopback(host) else None
    return None


def split_host_port(text: str) -> tuple[str, int]:
    """Split ``host[:port]`` / ``[v6]:port`` the way slmgr /skms does (port 1688 when absent)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        end = text.index("]")
        host, rest = text[: end + 1], text[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif ":" in text:
        host, port = text.split(":", 1)
    else:
        host, port = text, ""
    return host, int(port) if port.isdigit() else DEFAULT_KMS_PORT
