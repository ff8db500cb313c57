"""``ospp.vbs`` (Office 2013/2016/2019) under cscript: the options the bureau's Q&A uses and their exact output.

Options: /act, /dstatus, /dstatusall, /dcmid, /sethst:<host>, /setprt:<port>, /remhst, /inpkey:<key>,
/unpkey:<last5>, /cachst:TRUE|FALSE, /dhistorykms. ospp.vbs always exits 0. On Windows 7 it works on the
OfficeSoftwareProtection* classes, on Windows 8+ on SoftwareLicensing* filtered by the Office application ID,
exactly as the real script decides.

Output frame: ``---Processing--------------------------`` and a separator line first, a separator and
``---Exiting-----------------------------`` last. Errors print ``ERROR CODE: 0x…`` and ``ERROR DESCRIPTION: …``
(the text from Office's slerror.xml, or "Run the following: cscript ospp.vbs /ddescr:0x…" for codes it does not
describe); 0xC004F074 adds the /dhistorykms hint.

Deviations/choices:
- slerror.xml is modelled as describing the licensing codes (0xC004…/0x4004…) the lab knows and none of the
  Win32 codes (0x8007…), so those print the /ddescr hint.
- Popups (unsupported option, missing value, /ddescr which runs slui.exe) never close in a WinRS session: the
  command hangs after printing the Processing header.
- /dhistorykms reports no events: the lab keeps no Application event log.
- ospp lower-cases its whole argument (the real script does ``LCase(strCommand)``), so host names and keys are
  passed on in lower case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

from orchestrator.lab.commands.base import CRLF, HANG_SECONDS, Ctx, ProgResult
from orchestrator.lab.licensing import EXTRA_TEXTS, OFFICE_APP_ID, SLMGR_TEXTS, ServiceState, SkuView
from orchestrator.lab.provider import WmiError

SEP = "---------------------------------------"
PROCESSING = "---Processing--------------------------"
EXITING = "---Exiting-----------------------------"
STATUS_TEXT = {
    0: " ---UNLICENSED--- ",
    1: " ---LICENSED--- ",
    2: " ---OOB_GRACE--- ",
    3: " ---OOT_GRACE--- ",
    4: " ---NON_GENUINE_GRACE--- ",
    5: " ---NOTIFICATIONS--- ",
    6: " ---EXTENDED GRACE--- ",
}


class _Quit(Exception):
    pass


@dataclass
class _Counts:
    """What ospp.vbs counts while it lists the Office products."""

    installed: int = 0
    kms: int = 0
    uninstalled: int = 0


_KMS_SETTINGS = ("/sethst", "/setprt", "/remhst", "/actype", "/skms-domain", "/ckms-domain")


class _Hang(Exception):
    pass


def _description(code: int) -> str | None:
    code &= 0xFFFFFFFF
    if code >> 16 not in (0xC004, 0x4004):
        return None
    text = SLMGR_TEXTS.get(code) or EXTRA_TEXTS.get(code)
    if text is None:
        return None
    return text if text.endswith(".") else text + "."


class _Ospp:
    def __init__(self, ctx: Ctx, script_name: str) -> None:
        self.ctx = ctx
        self.m = ctx.machine
        self.lic = ctx.machine.licensing
        self.script_name = script_name
        self.out: list[str] = []

    def echo(self, text: str = "") -> None:
        self.out.append(text + CRLF)

    def quit(self) -> NoReturn:
        self.echo(SEP)
        self.echo(EXITING)
        raise _Quit

    def views(self) -> list[SkuView]:
        with self.m.lock:
            products = self.lic.ospp_products() if self.lic.ospp is not None else self.lic.spp_products()
            return [v for v in self.lic.views(products) if v.sku.application_id == OFFICE_APP_ID]

    def err_handle(self, command: str, exc: WmiError | None) -> None:
        """ospp.vbs' sppErrHandle."""
        if exc is None:
            if command == "/act":
                self.echo("<Product activation successful>")
            elif command == "/inpkey":
                self.echo("<Product key installation successful>")
                self.quit()
            elif command in ("/sethst", "/setprt", "/remhst", "/cachst"):
                self.echo("Successfully applied setting.")
                self.quit()
            elif command == "/unpkey":
                self.echo("<Product key uninstall successful>")
                self.quit()
            return
        code = exc.hresult & 0xFFFFFFFF
        hex_code = f"{code:X}"
        text = _description(code)
        if text is None:
            self.echo(f"ERROR CODE: 0x{hex_code}")
            self.echo(f"ERROR DESCRIPTION: Run the following: cscript ospp.vbs /ddescr:0x{hex_code}")
            if command != "/act":
                self.quit()
        else:
            self.echo(f"ERROR CODE: 0x{hex_code}")
            self.echo(f"ERROR DESCRIPTION: {text}")
        if hex_code == "C004F074":
            self.echo(f"To view the activation event history run: cscript {self.script_name} /dhistorykms")

    async def main(self, args: list[str]) -> None:
        if not args:
            return  # opens ospp.htm in a browser window and quits, printing nothing
        command = args[0].lower()
        self.echo(PROCESSING)
        self.echo(SEP)
        machine_arg = args[1] if len(args) > 1 else ""
        if machine_arg and machine_arg.lower() not in (self.m.computer_name.lower(), "."):
            raise _Hang  # "An error occurred while making the connection." popup
        simple = {"/act", "/dstatus", "/dstatusall", "/dinstid", "/remhst", "/dcmid", "/dhistorykms", "/dhistoryacterr"}
        if command in simple:
            await self.lic_action(command, "")
            return
        if command in (
            "/version",
            "/help",
            "help",
            "?",
            "/?",
            "/osppsvcrestart",
            "/osppsvcauto",
            "/puserops",
            "/duserops",
        ):
            raise _Hang
        pos = command.find(":") + 1
        if pos not in (7, 8, 13):
            raise _Hang  # "Unsupported command passed."
        name = command[: pos - 1]
        value = command[pos:]
        if name not in (
            "/skms-domain",
            "/actype",
            "/inpkey",
            "/unpkey",
            "/inslic",
            "/actcid",
            "/sethst",
            "/setprt",
            "/ddescr",
            "/rtokil",
            "/tokact",
            "/cachst",
            "/rearm",
        ):
            raise _Hang
        if value == "" or name in ("/ddescr", "/rearm", "/inslic", "/actcid", "/rtokil", "/tokact"):
            raise _Hang  # popups, slui.exe windows or files the lab does not have
        await self.lic_action(name, value)

    async def lic_action(self, command: str, value: str) -> None:
        if command in ("/dhistorykms", "/dhistoryacterr"):
            self.history(command == "/dhistorykms")
        lic = self.lic
        self.service_setting(command, value, lic.ospp if lic.ospp is not None else lic.spp)
        if command in ("/actype", "/skms-domain", "/ckms-domain") and lic.ospp is not None:
            raise _Hang  # "supported on Windows 8 and above only" popup
        counts = _Counts()
        for view in self.views():
            await self.on_product(command, value, view, counts)
        if command == "/unpkey" and counts.uninstalled == 0:
            self.echo("<Product key not found>")
            self.quit()
        if command in _KMS_SETTINGS:
            if counts.kms == 0:
                self.echo("No Office KMS licenses were found on the system.")
                self.quit()
            self.err_handle(command if command != "/actype" else "/sethst", None)
        if counts.installed == 0:
            self.echo("<No installed product keys detected>")
            self.echo(SEP)
        self.quit()

    def history(self, kms: bool) -> NoReturn:
        """/dhistorykms, /dhistoryacterr: the event log search (the lab's PCs log no such events)."""
        name = self.m.computer_name
        if kms:
            self.echo("Searching for KMS activation events on machine: " + name)
        else:
            self.echo("Searching for Internet activation failure events on machine: " + name)
        self.echo("Event ID: " + ("12288" if kms else "8200"))
        self.echo("\r")
        self.echo(SEP)
        found = "No KMS activation events found on machine: " if kms else "No failure events found on machine: "
        self.echo(found + name)
        self.echo(SEP)
        self.quit()

    def service_setting(self, command: str, value: str, service: ServiceState) -> None:
        """/inpkey and /cachst change the licensing service (then the product listing follows); /dcmid shows
        its CMID and quits."""
        m, lic, admin = self.m, self.lic, self.ctx.admin
        if command == "/dcmid":
            self.echo("Client Machine ID (CMID): " + (service.cmid or "Not found."))
            self.quit()
        if command not in ("/inpkey", "/cachst"):
            return
        if command == "/cachst" and value not in ("true", "false"):
            raise _Hang
        try:
            with m.lock:
                if command == "/inpkey":
                    lic.install_product_key(service, value, admin)
                else:
                    lic.set_host_caching(service, value == "false", admin)
        except WmiError as exc:
            self.err_handle(command, exc)
            self.quit()
        self.err_handle(command, None)

    async def on_product(self, command: str, value: str, view: SkuView, counts: _Counts) -> None:
        """One Office product of the listing, for ``command``."""
        if command in ("/act", "/unpkey", "/dinstid") and view.partial_key is None:
            return
        if view.partial_key:
            counts.installed += 1
        is_kms = "KMS" in view.sku.description.upper()
        if is_kms:
            counts.kms += 1
        if command in _KMS_SETTINGS:
            if is_kms:
                self.kms_setting(command, value, view)
        elif command == "/act":
            await self.activate(view)
        elif command == "/unpkey":
            self.unpkey(value, view, counts)
        elif command == "/dinstid":
            from orchestrator.lab.licensing import installation_id

            iid = installation_id(view.product.key or "", view.service.cmid)
            self.echo(f"Installation ID for: {view.sku.name}: {iid}")
            self.echo(SEP)
        elif command in ("/dstatus", "/dstatusall"):
            self.status_block(view, command == "/dstatusall", is_kms)

    def kms_setting(self, command: str, value: str, view: SkuView) -> None:
        """/sethst, /setprt, /remhst (and the Windows 8+ only ones, refused) on one KMS client product."""
        m, lic, admin = self.m, self.lic, self.ctx.admin
        target = (view.product, view.sku)
        try:
            with m.lock:
                if command == "/sethst":
                    lic.set_kms_machine(target, value, admin)
                elif command == "/setprt":
                    lic.set_kms_port(target, value, admin)
                elif command == "/remhst":
                    lic.clear_kms_machine(target, admin)
                    lic.clear_kms_port(target, admin)
                elif not admin:
                    raise WmiError(0x80070005, "")
        except WmiError as exc:
            self.err_handle("", exc)

    async def activate(self, view: SkuView) -> None:
        self.echo("Installed product key detected - attempting to activate the following product:")
        self.echo("SKU ID: " + view.sku.id)
        self.echo("LICENSE NAME: " + view.sku.name)
        self.echo("LICENSE DESCRIPTION: " + view.sku.description)
        self.echo("Last 5 characters of installed product key: " + (view.partial_key or ""))
        try:
            await self.lic.activate(view.product, view.sku, self.ctx.admin, self.m.lock)
            self.err_handle("/act", None)
        except WmiError as exc:
            self.err_handle("/act", exc)
        self.echo(SEP)

    def unpkey(self, value: str, view: SkuView, counts: _Counts) -> None:
        if len(value) != 5:
            raise _Hang
        if value.upper() != view.partial_key:
            return
        counts.uninstalled += 1
        self.echo("Uninstalling product key for: " + view.sku.name)
        try:
            with self.m.lock:
                self.lic.uninstall_product_key(view.product, view.sku, self.ctx.admin)
        except WmiError as exc:
            self.err_handle("/unpkey", exc)
            return
        self.err_handle("/unpkey", None)

    def status_block(self, view: SkuView, show_all: bool, is_kms: bool) -> None:
        if not show_all and not view.has_key:
            return
        sku = view.sku
        self.echo("SKU ID: " + sku.id)
        self.echo("LICENSE NAME: " + sku.name)
        self.echo("LICENSE DESCRIPTION: " + sku.description)
        self.echo("LICENSE STATUS: " + STATUS_TEXT.get(view.license_status, " ---UNKNOWN--- "))
        reason = view.reason & 0xFFFFFFFF
        if reason:
            suffix = "" if view.license_status != 1 else " (for information purposes only as the status is licensed)"
            self.echo(f"ERROR CODE: 0x{reason:X}{suffix}")
            text = _description(reason)
            self.echo("ERROR DESCRIPTION: " + (text or f"Run the following: cscript ospp.vbs /ddescr:0x{reason:X}"))
        if view.grace_minutes:
            self.echo(
                f"REMAINING GRACE: {view.grace_minutes // 1440} days  ({view.grace_minutes} minute(s) before expiring)"
            )
        if view.partial_key:
            self.echo("Last 5 characters of installed product key: " + view.partial_key)
            if is_kms:
                win7 = self.lic.ospp is not None
                if not win7:
                    self.echo("Activation Type Configuration: ALL")
                self.echo("\tDNS auto-discovery: KMS name not available")
                if view.kms.machine:
                    self.echo(f"\tKMS machine registry override defined: {view.kms.machine}:{view.kms.port or 1688}")
                self.echo(f"\tActivation Interval: {view.service.activation_interval} minutes")
                self.echo(f"\tRenewal Interval: {view.service.renewal_interval} minutes")
                self.echo("\tKMS host caching: " + ("Enabled" if view.service.host_caching else "Disabled"))
                if not win7 and view.service.lookup_domain:
                    self.echo("\tKMS Lookup Domain: " + view.service.lookup_domain)
        self.echo(SEP)


async def run(ctx: Ctx, args: list[str], script_name: str) -> ProgResult:
    """Run ``ospp.vbs`` (cscript host). Always exits 0."""
    script = _Ospp(ctx, script_name)
    try:
        await script.main(args)
    except _Quit:
        pass
    except _Hang:
        return ProgResult("".join(script.out), hang=True, duration=HANG_SECONDS)
    return ProgResult("".join(script.out), code=0)
