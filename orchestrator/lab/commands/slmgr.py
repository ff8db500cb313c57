"""``slmgr.vbs`` under cscript, on en-US Windows: the same options, texts, line layout and exit codes as
Microsoft's script, acting on the PC's licensing state through the same calls WMI clients make.

Output layout follows the script: lines are collected (``LineOut``) and written by one ``WScript.Echo`` at
exit, so every run ends with an extra CRLF. When a WMI call raises, slmgr prints ``Error: 0x<HRESULT> <text>``
(its own text table, else the "run 'slui.exe 0x2a 0x…'" hint) and exits with the HRESULT (reported here as the
unsigned 32-bit process exit code); otherwise it exits 0, including "Error: Product activation failed.".

Supported options: /ipk /ato /dli /dlv /xpr /upk /skms /ckms /skms-domain /ckms-domain /skhc /ckhc /dti /rearm
/cpky /act-type and the KMS-host options /sai /sri /sprt /sdns /cdns /spri /cpri (which only warn: a lab PC is
never a KMS host). ``slmgr.vbs <computer> ...`` for another computer fails with 0x800706BA.

Deviations/choices:
- Token-based and Active Directory activation options, /ilc, /rilc, /atp, /rearm-app and /rearm-sku are
  reported as unrecognized options.
- On Windows 7 the lines for properties Windows 7 does not have (Product Key Channel, Trusted time, activation
  type) are left out, approximating the Windows 7 script with the Windows 10 one.
- /xpr's permanent-activation text is "The machine is permanently activated." on Windows 10/7/Server and
  "Windows is Activated for the lifespan of your device." on Windows 11.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import NoReturn

from orchestrator.lab.commands.base import CRLF, Ctx, ProgResult, vb_date
from orchestrator.lab.licensing import (
    SLMGR_TEXTS,
    WINDOWS_APP_ID,
    ProductLicense,
    ServiceState,
    Sku,
    SkuView,
    installation_id,
    product_key_id,
)
from orchestrator.lab.provider import WmiError

SL_E_GRACE_TIME_EXPIRED = 0xC004F009
SL_E_NOT_GENUINE = 0xC004F200
PHONE_TEXT = (
    "Product activation telephone numbers can be obtained by searching the phone.inf file for the appropriate "
    "phone number for your location/country. You can open the phone.inf file from a Command Prompt or the "
    "Start Menu by running: notepad %systemroot%\\system32\\sppui\\phone.inf"
)

_USAGE_GLOBAL = [
    ("ipk", "<Product Key>", "Install product key (replaces existing key)"),
    ("ato", "[Activation ID]", "Activate Windows"),
    ("dli", "[Activation ID | All]", "Display license information (default: current license)"),
    ("dlv", "[Activation ID | All]", "Display detailed license information (default: current license)"),
    ("xpr", "[Activation ID]", "Expiration date for current license state"),
]
_USAGE_ADVANCED = [
    ("cpky", "", "Clear product key from the registry (prevents disclosure attacks)"),
    ("ilc", "<License file>", "Install license"),
    ("rilc", "", "Re-install system license files"),
    ("rearm", "", "Reset the licensing status of the machine"),
    ("rearm-app", "<Application ID>", "Reset the licensing status of the given app"),
    ("rearm-sku", "<Activation ID>", "Reset the licensing status of the given sku"),
    ("upk", "[Activation ID]", "Uninstall product key"),
]
_USAGE_KMS_CLIENT = [
    (
        "skms",
        "<Name[:Port] | : port> [Activation ID]",
        "Set the name and/or the port for the KMS computer this machine will use. IPv6 address must be "
        "specified in the format [hostname]:port",
    ),
    ("ckms", "[Activation ID]", "Clear name of KMS computer used (sets the port to the default)"),
    (
        "skms-domain",
        "<FQDN> [Activation ID]",
        "Set the specific DNS domain in which all KMS SRV records can be found. This setting has no effect if "
        "the specific single KMS host is set via /skms option.",
    ),
    (
        "ckms-domain",
        "[Activation ID]",
        "Clear the specific DNS domain in which all KMS SRV records can be found. The specific KMS host will be "
        "used if set via /skms. Otherwise default KMS auto-discovery will be used.",
    ),
    ("skhc", "", "Enable KMS host caching"),
    ("ckhc", "", "Disable KMS host caching"),
]
_USAGE_KMS = [
    ("sprt", "<Port>", "Set TCP port KMS will use to communicate with clients"),
    (
        "sai",
        "<Activation Interval>",
        "Set interval (minutes) for unactivated clients to attempt KMS connection. The activation interval must "
        "be between 15 minutes (min) and 30 days (max) although the default (2 hours) is recommended.",
    ),
    (
        "sri",
        "<Renewal Interval>",
        "Set renewal interval (minutes) for activated clients to attempt KMS connection. The renewal interval "
        "must be between 15 minutes (min) and 30 days (max) although the default (7 days) is recommended.",
    ),
    ("sdns", "", "Enable DNS publishing by KMS (default)"),
    ("cdns", "", "Disable DNS publishing by KMS"),
    ("spri", "", "Set KMS priority to normal (default)"),
    ("cpri", "", "Set KMS priority to low"),
    (
        "act-type",
        "[Activation-Type] [Activation ID]",
        "Set activation type to 1 (for AD) or 2 (for KMS) or 3 (for Token) or 0 (for all).",
    ),
]
_USAGE_TKA = [
    ("lil", "", "List installed Token-based Activation Issuance Licenses"),
    ("ril", "<ILID> <ILvID>", "Remove installed Token-based Activation Issuance License"),
    ("ltc", "", "List Token-based Activation Certificates"),
    ("fta", "<Certificate Thumbprint> [<PIN>]", "Force Token-based Activation"),
]
_USAGE_AD = [
    (
        "ad-activation-online",
        "<Product Key> [Activation Object name]",
        "Activate AD (Active Directory) forest with user-provided product key",
    ),
    ("ad-activation-get-iid", "<Product Key>", "Display Installation ID for AD (Active Directory) forest"),
    (
        "ad-activation-apply-cid",
        "<Product Key> <Confirmation ID> [Activation Object name]",
        "Activate AD (Active Directory) forest with user-provided product key and Confirmation ID",
    ),
    ("ao-list", "", "Display Activation Objects in AD (Active Directory)"),
    (
        "del-ao",
        "<Activation Object DN | Activation Object RDN>",
        "Delete Activation Objects in AD (Active Directory) for user-provided Activation Object",
    ),
]


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class _Script:
    """One slmgr.vbs run: the LineOut buffer, the parsed arguments and the PC."""

    def __init__(self, ctx: Ctx, args: list[str]) -> None:
        self.ctx = ctx
        self.m = ctx.machine
        self.lic = ctx.machine.licensing
        self.args = args
        self.buf: list[str] = []
        self.text = ""

    # -- WScript plumbing ------------------------------------------------------------------------------
    def say(self, english: str, **values: object) -> str:
        """The script's text in the PC's display language, whatever the console's code page (slmgr.vbs loads its
        texts from System32\\slmgr\\<LANGID>; a zh-TW PC prints Chinese, which cscript writes in cp950)."""
        return self.m.locale.text(english, **values)

    def line(self, text: str = "") -> None:
        self.buf.append(text + CRLF)

    def flush(self, text: str = "") -> None:
        self.text += "".join(self.buf) + text + CRLF
        self.buf.clear()

    def exit(self, code: int) -> NoReturn:
        raise _Exit(code)

    def finish(self) -> str:
        if self.buf:
            self.text += "".join(self.buf) + CRLF
            self.buf.clear()
        return self.text

    def show_error(self, code: int, message: str | None = None) -> None:
        if message is None:
            message = self.say("Error: ")
        code &= 0xFFFFFFFF
        signed = code - (1 << 32) if code & 0x80000000 else code
        number = f"0x{code:X}" if signed < 0 else str(code)
        text = SLMGR_TEXTS.get(code)
        if text is None:
            text = self.say(
                "On a computer running Microsoft Windows non-core edition, run 'slui.exe 0x2a {number}' to "
                "display the error text.",
                number=number,
            )
        else:
            text = self.say(text)
        if "0x%ERRCODE%" not in message:
            message += "0x%ERRCODE%"
        if "%ERRTEXT%" not in message:
            message += " %ERRTEXT%"
        self.line(message.replace("0x%ERRCODE%", number).replace("%ERRTEXT%", text))

    def quit_error(self, exc: WmiError) -> NoReturn:
        self.show_error(exc.hresult)
        self.exit(exc.hresult)

    def vb_error(self, number: int, description: str) -> NoReturn:
        self.line(f"Error: {number} {description} (Microsoft VBScript runtime error)")
        self.exit(number)

    # -- usage -----------------------------------------------------------------------------------------
    def usage(self) -> NoReturn:
        def opt(rows: list[tuple[str, str, str]]) -> None:
            for name, params, text in rows:
                self.line(f"/{name} {params}")
                self.line(f"    {text}")

        self.line("Windows Software Licensing Management Tool")
        self.line("Usage: slmgr.vbs [MachineName [User Password]] [<Option>]")
        self.line("           MachineName: Name of remote machine (default is local machine)")
        self.line("           User:        Account with required privilege on remote machine")
        self.line("           Password:    password for the previous account")
        self.line("")
        self.line("Global Options:")
        opt(_USAGE_GLOBAL)
        self.flush("")
        self.line("Advanced Options:")
        opt(_USAGE_ADVANCED)
        self.line("")
        opt([("dti", "[Activation ID]", "Display Installation ID for offline activation")])
        opt([("atp", "<Confirmation ID> [Activation ID]", "Activate product with user-provided Confirmation ID")])
        self.line("")
        self.line("Volume Licensing: Key Management Service (KMS) Client Options:")
        opt(_USAGE_KMS_CLIENT)
        self.flush("")
        self.line("Volume Licensing: Token-based Activation Options:")
        opt(_USAGE_TKA)
        self.flush("")
        self.line("Volume Licensing: Key Management Service (KMS) Options:")
        opt(_USAGE_KMS)
        self.flush("")
        self.line("Volume Licensing: Active Directory (AD) Activation Options:")
        opt(_USAGE_AD)
        self.exit(1)

    def need(self, index: int, must: bool, option: str, param: str) -> bool:
        if len(self.args) > index:
            return True
        if must:
            self.line("")
            self.line(f"Error: option {option} needs {param}")
            self.usage()
        return False

    def arg(self, index: int) -> str:
        return self.args[index] if len(self.args) > index else ""

    # -- product helpers ----------------------------------------------------------------------------------
    def views(self) -> list[SkuView]:
        with self.m.lock:
            return self.lic.views(self.lic.spp_products())

    def keyed(self) -> list[SkuView]:
        return [v for v in self.views() if v.has_key]

    def view_of(self, product: ProductLicense, sku: Sku) -> SkuView:
        return next(v for v in self.views() if v.product is product and v.sku is sku)

    @staticmethod
    def is_primary(view: SkuView) -> bool:
        return view.sku.application_id == WINDOWS_APP_ID and view.has_key

    @staticmethod
    def matches(view: SkuView, act_id: str) -> bool:
        if act_id == "":
            return view.sku.application_id == WINDOWS_APP_ID
        return view.sku.id == act_id

    # -- entry ---------------------------------------------------------------------------------------
    async def main(self) -> None:
        index = 0
        known = False
        remote: list[str] = []
        for index in range(4):
            if index >= len(self.args):
                break
            if self.args[index][:1] in ("/", "-"):
                known = True
                break
            remote.append(self.args[index])
        else:
            index = 4
        if not known or index == 2:
            remote = []
            known = False
        if remote and remote[0].lower() not in (".", "localhost", self.m.computer_name.lower(), self.m.address):
            self.show_error(
                0x800706BA,
                "Error 0x%ERRCODE% occurred in connecting to server %COMPUTERNAME%.".replace(
                    "%COMPUTERNAME%", remote[0]
                ),
            )
            self.exit(0x800706BA)
        if not known:
            self.line("Invalid combination of command parameters.")
            self.line("")
            self.usage()
        if not await self.dispatch(index):
            self.line("Unrecognized option: " + self.args[index])
            self.line("")
            self.usage()

    async def dispatch(self, i: int) -> bool:
        option = self.args[i].lower()[1:]
        if option in _WIN8_OPTIONS and self.m.os.is_win7:
            return False
        handler = _OPTIONS.get(option)
        if handler is None:
            return False
        await handler(self, i, option)
        return True

    async def opt_ipk(self, i: int, option: str) -> None:
        if self.need(i + 1, True, "ipk", "<Product Key>"):
            self.install_key(self.args[i + 1])

    async def opt_upk(self, i: int, option: str) -> None:
        self.uninstall_key(self.arg(i + 1).lower())

    async def opt_ato(self, i: int, option: str) -> None:
        await self.activate(self.arg(i + 1).lower())

    async def opt_display(self, i: int, option: str) -> None:
        self.display(self.arg(i + 1).lower(), verbose=option == "dlv")

    async def opt_xpr(self, i: int, option: str) -> None:
        self.expiration(self.arg(i + 1).lower())

    async def opt_dti(self, i: int, option: str) -> None:
        self.display_iid(self.arg(i + 1).lower())

    async def opt_skms(self, i: int, option: str) -> None:
        if self.need(i + 1, True, "skms", "<Name[:Port] | : port>"):
            self.set_kms(self.args[i + 1], self.arg(i + 2).lower())

    async def opt_ckms(self, i: int, option: str) -> None:
        self.clear_kms(self.arg(i + 1).lower())

    async def opt_skms_domain(self, i: int, option: str) -> None:
        if self.need(i + 1, True, "skms-domain", "<FQDN>"):
            self.lookup_domain(self.args[i + 1], self.arg(i + 2).lower())

    async def opt_ckms_domain(self, i: int, option: str) -> None:
        self.lookup_domain(None, self.arg(i + 1).lower())

    async def opt_host_caching(self, i: int, option: str) -> None:
        self.host_caching(disable=option == "ckhc")

    async def opt_rearm(self, i: int, option: str) -> None:
        self.rearm()

    async def opt_admin_done(self, i: int, option: str) -> None:
        """/cpky, /act-type: an administrator's change the lab only acknowledges."""
        if not self.ctx.admin:
            self.quit_error(WmiError(0x80070005, ""))
        self.line(_ADMIN_DONE[option])

    async def opt_kms_host_setting(self, i: int, option: str) -> None:
        """/sai, /sri, /sprt: settings of a KMS host, which the lab's PCs are not."""
        if not self.need(i + 1, True, option, _KMS_HOST_ARGS[option][0]):
            return
        value = self.args[i + 1]
        if option != "sprt" and value.lstrip("-").isdigit() and int(value) < 0:
            self.line("Error: The data is invalid")
        else:
            self.line(f"Warning: {_KMS_HOST_ARGS[option][1]} can only be set on a KMS machine that is also activated.")

    async def opt_kms_host_flag(self, i: int, option: str) -> None:
        what = "DNS Publishing" if option in ("sdns", "cdns") else "Priority"
        self.line(f"Warning: {what} can only be set on a KMS machine that is also activated.")

    # -- options ---------------------------------------------------------------------------------------
    def install_key(self, key: str) -> None:
        try:
            with self.m.lock:
                self.lic.install_product_key(self.lic.spp, key, self.ctx.admin)
        except WmiError as exc:
            self.quit_error(exc)
        self.line(self.say("Installed product key {key} successfully.", key=key))

    def uninstall_key(self, act_id: str) -> None:
        done = False
        for view in self.keyed():
            if self.matches(view, act_id):
                try:
                    with self.m.lock:
                        self.lic.uninstall_product_key(view.product, view.sku, self.ctx.admin)
                except WmiError as exc:
                    self.quit_error(exc)
                if act_id != "" or self.is_primary(view):
                    done = True
                self.line(self.say("Uninstalled product key successfully."))
                if done:
                    break
        if not done:
            self.line(self.say("Error: product key not found."))

    async def activate(self, act_id: str) -> None:
        for view in self.keyed():
            if not self.matches(view, act_id):
                continue
            self.line(self.say("Activating {name} ({id}) ...", name=view.sku.name, id=view.sku.id))
            if "MAK" not in view.sku.description or view.license_status != 1:
                try:
                    await self.lic.activate(view.product, view.sku, self.ctx.admin, self.m.lock)
                except WmiError as exc:
                    self.quit_error(exc)
            after = self.view_of(view.product, view.sku)
            if after.license_status == 1:
                self.line(self.say("Product activated successfully."))
            elif after.license_status == 4:
                self.line(
                    "Error: The machine is running within the non-genuine grace period. Run 'slui.exe' to go online "
                    "and make the machine genuine."
                )
            elif after.license_status == 5 and after.reason == SL_E_NOT_GENUINE:
                self.line(
                    "Error: Windows is running within the non-genuine notification period. Run 'slui.exe' to go "
                    "online and validate Windows."
                )
            elif after.license_status == 6:
                self.line(self.say("Product activated successfully."))
                self.line(self.say("License Status: Extended grace period"))
            else:
                self.line(self.say("Error: Product activation failed."))
            if act_id != "" or self.is_primary(view):
                return
        self.line(self.say("Error: product not found."))

    def display(self, param: str, verbose: bool) -> None:
        """/dli and /dlv: the chosen products (the primary one, ``all``, or an activation ID)."""
        if verbose:
            self.line(self.say("Software licensing service version: {version}", version=self.lic.spp.version))
        found = False
        for view in self.views():
            sku = view.sku
            if not ((param == "" and self.is_primary(view)) or param in ("all", sku.id)):
                continue
            found = True
            self.product_block(view, verbose)
            if param not in ("", "all") and param == sku.id:
                break
            self.line("")
        if not found:
            self.line(self.say("Error: product key not found."))

    def product_block(self, view: SkuView, verbose: bool) -> None:
        sku = view.sku
        self.line("")
        self.line(self.say("Name: {name}", name=sku.name))
        self.line(self.say("Description: {text}", text=sku.description))
        if verbose:
            self.identity_lines(view)
        if view.partial_key:
            self.line(self.say("Partial Product Key: {key}", key=view.partial_key))
        else:
            self.line(self.say("This license is not in use."))
        self.status_lines(view, "TIMEBASED_" in sku.description)
        if verbose:
            self.rearm_lines(view)
        if "VOLUME_KMSCLIENT" in sku.description:
            if not self.m.os.is_win7:
                self.line(self.say("Configured Activation Type: All"))
            if view.license_status != 1:
                self.line(
                    self.say(
                        "Please use slmgr.vbs /ato to activate and update KMS client information in order to "
                        "update values."
                    )
                )
            else:
                self.kms_client_info(view)

    def identity_lines(self, view: SkuView) -> None:
        """/dlv's IDs of a product: activation, application, extended PID, channel, installation ID, URLs."""
        sku, product = view.sku, view.product
        key = product.key or ""
        self.line(self.say("Activation ID: {id}", id=sku.id))
        self.line(self.say("Application ID: {id}", id=sku.application_id))
        pid = product_key_id(key, self.m.os, language=self.m.locale.os_language) if view.has_key else ""
        self.line(self.say("Extended PID: {pid}", pid=pid))
        if not self.m.os.is_win7:
            channel = sku.product_key_channel if view.has_key else ""
            self.line(self.say("Product Key Channel: {channel}", channel=channel))
        iid = installation_id(key, product.service.cmid) if view.has_key else ""
        self.line(self.say("Installation ID: {iid}", iid=iid))
        if "VOLUME_KMSCLIENT" not in sku.description and view.has_key and product.app == "windows":
            self.line("Processor Certificate URL: http://go.microsoft.com/fwlink/?LinkID=88338")
            self.line("Machine Certificate URL: http://go.microsoft.com/fwlink/?LinkID=88339")
            self.line("Use License URL: http://go.microsoft.com/fwlink/?LinkID=88341")
            self.line("Product Key Certificate URL: http://go.microsoft.com/fwlink/?LinkID=88340")
            self.line("Validation URL: http://go.microsoft.com/fwlink/?LinkID=88342")

    def rearm_lines(self, view: SkuView) -> None:
        """/dlv's rearm counts and trusted time."""
        product = view.product
        if view.sku.application_id == WINDOWS_APP_ID:
            self.line(self.say("Remaining Windows rearm count: {count}", count=self.lic.spp.rearm_count))
        else:
            self.line(self.say("Remaining App rearm count: {count}", count=product.sku_rearm))
        self.line(self.say("Remaining SKU rearm count: {count}", count=product.sku_rearm))
        if not self.m.os.is_win7 and view.has_key and view.license_status != 0:
            self.line(self.say("Trusted time: {time}", time=vb_date(self.ctx, self.m.local_now())))

    def status_lines(self, view: SkuView, tbl: bool) -> None:
        ls, minutes = view.license_status, view.grace_minutes
        days = (minutes + 1439) // 1440
        say = self.say
        remaining = say("Time remaining: {minutes} minute(s) ({days} day(s))", minutes=minutes, days=days)
        if ls == 0:
            self.line(say("License Status: Unlicensed"))
        elif ls == 1:
            self.line(say("License Status: Licensed"))
            if minutes:
                kind = "Timebased activation expiration" if tbl else "Volume activation expiration"
                self.line(say(kind + ": {minutes} minute(s) ({days} day(s))", minutes=minutes, days=days))
        elif ls == 2:
            self.line(say("License Status: Initial grace period"))
            self.line(remaining)
        elif ls == 3:
            self.line(say("License Status: Additional grace period (KMS license expired or hardware out of tolerance)"))
            self.line(remaining)
        elif ls == 4:
            self.line(say("License Status: Non-genuine grace period."))
            self.line(remaining)
        elif ls == 5:
            self.line(say("License Status: Notification"))
            reason = view.reason & 0xFFFFFFFF
            if reason == SL_E_NOT_GENUINE:
                self.line(say("Notification Reason: 0x{code} (non-genuine).", code=f"{reason:X}"))
            elif reason == SL_E_GRACE_TIME_EXPIRED:
                self.line(say("Notification Reason: 0x{code} (grace time expired).", code=f"{reason:X}"))
            else:
                self.line(say("Notification Reason: 0x{code}.", code=f"{reason:X}"))
        elif ls == 6:
            self.line(say("License Status: Extended grace period"))
            self.line(remaining)
        else:
            self.line(say("License Status: Unknown"))

    def kms_client_info(self, view: SkuView) -> None:
        product, service = view.product, view.service
        self.line("")
        say = self.say
        self.line(say("Most recent activation information:"))
        self.line(say("Key Management Service client information"))
        self.line(say("    Client Machine ID (CMID): {cmid}", cmid=service.cmid))
        if service.lookup_domain:
            self.line(say("    Registered KMS SRV record lookup domain: {domain}", domain=service.lookup_domain))
        if view.kms.machine:
            host = f"{view.kms.machine}:{view.kms.port or 1688}"
            self.line(say("    Registered KMS machine name: {host}", host=host))
        else:
            self.line(say("    DNS auto-discovery: KMS name not available"))
        if product.kms_ip and not self.m.os.is_win7:
            self.line(say("    KMS machine IP address: {ip}", ip=product.kms_ip))
        else:
            self.line(say("    KMS machine IP address: not available"))
        self.line(say("    KMS machine extended PID: {pid}", pid=product.kms_epid or ""))
        self.line(say("    Activation interval: {minutes} minutes", minutes=service.activation_interval))
        self.line(say("    Renewal interval: {minutes} minutes", minutes=service.renewal_interval))
        self.line(say("    KMS host caching is " + ("enabled" if service.host_caching else "disabled")))
        if service.lookup_domain and view.kms.machine:
            self.line("")
            self.line(
                f"Warning: /skms setting overrides the /skms-domain setting. {view.kms.machine}:"
                f"{view.kms.port or 1688} will be used for activation."
            )

    def expiration(self, act_id: str) -> None:
        found = False
        now = self.m.local_now()
        for view in self.keyed():
            if (act_id == "" and view.sku.application_id != WINDOWS_APP_ID) or (act_id and view.sku.id != act_id):
                continue
            found = True
            ends = vb_date(self.ctx, now + timedelta(minutes=view.grace_minutes))
            ls = view.license_status
            say = self.say
            text = ""
            if ls == 0:
                text = say("Unlicensed")
            elif ls == 1:
                if view.grace_minutes:
                    kind = say("Timebased" if "TIMEBASED_" in view.sku.description else "Volume")
                    text = say("{kind} activation will expire {ends}", kind=kind, ends=ends)
                elif self.m.os.build.startswith("22"):
                    text = say("Windows is Activated for the lifespan of your device.")
                else:
                    text = say("The machine is permanently activated.")
            elif ls == 2:
                text = say("Initial grace period ends {ends}", ends=ends)
            elif ls == 3:
                text = say("Additional grace period ends {ends}", ends=ends)
            elif ls == 4:
                text = say("Non-genuine grace period ends {ends}", ends=ends)
            elif ls == 5:
                text = say("Windows is in Notification mode")
            elif ls == 6:
                text = say("Extended grace period ends {ends}", ends=ends)
            if text:
                self.line(view.sku.name + ":")
                self.line("    " + text)
        if not found:
            self.line(self.say("Error: product key not found."))

    def display_iid(self, act_id: str) -> None:
        found = False
        for view in self.keyed():
            if self.matches(view, act_id):
                self.line("Installation ID: " + installation_id(view.product.key or "", view.service.cmid))
                found = True
                if act_id != "" or self.is_primary(view):
                    break
        if found:
            self.line("")
            self.line(PHONE_TEXT)
        else:
            self.line(self.say("Error: product not found."))

    def _target(self, act_id: str) -> ServiceState | tuple[ProductLicense, Sku] | None:
        if act_id == "":
            return self.lic.spp
        for view in self.views():
            if view.sku.id == act_id:
                return (view.product, view.sku)
        self.line(f"Error: Activation ID ({act_id}) not found.")
        return None

    def set_kms(self, name_port: str, act_id: str) -> None:
        end = name_port.find("]")
        if name_port.startswith("[") and end > 0:
            if end == len(name_port) - 1:
                name, port = name_port, ""
            else:
                name, port = name_port[: end + 1], name_port[end + 2 :]
        elif ":" in name_port:
            name, port = name_port.split(":", 1)
        else:
            name, port = name_port, ""
        target = self._target(act_id)
        if target is None:
            return
        lic, admin = self.lic, self.ctx.admin
        previous = target.kms.machine if isinstance(target, ServiceState) else lic._setting(target).machine
        try:
            with self.m.lock:
                if name:
                    lic.set_kms_machine(target, name, admin)
        except WmiError as exc:
            self.quit_error(exc)

        def restore() -> None:
            with self.m.lock:
                if previous:
                    lic.set_kms_machine(target, previous, admin)
                else:
                    lic.clear_kms_machine(target, admin)

        try:
            with self.m.lock:
                if port != "":
                    stripped = port.strip()
                    if not stripped.lstrip("+-").isdigit():
                        restore()
                        self.vb_error(13, "Type mismatch: 'CLng'")
                    number = int(stripped)
                    if not -(2**31) <= number < 2**31:
                        restore()
                        self.vb_error(6, "Overflow: 'CLng'")
                    lic.set_kms_port(target, str(number), admin)
                else:
                    lic.clear_kms_port(target, admin)
        except WmiError as exc:
            restore()
            self.quit_error(exc)
        self.line(self.say("Key Management Service machine name set to {host} successfully.", host=name_port))
        domain = target.lookup_domain if isinstance(target, ServiceState) else target[0].service.lookup_domain
        if domain:
            self.line(
                f"Warning: /skms setting overrides the /skms-domain setting. {name_port} will be used for activation."
            )

    def clear_kms(self, act_id: str) -> None:
        target = self._target(act_id)
        if target is None:
            return
        try:
            with self.m.lock:
                self.lic.clear_kms_machine(target, self.ctx.admin)
                self.lic.clear_kms_port(target, self.ctx.admin)
        except WmiError as exc:
            self.quit_error(exc)
        self.line(self.say("Key Management Service machine name cleared successfully."))
        service = target if isinstance(target, ServiceState) else target[0].service
        if service.lookup_domain:
            self.line(
                f"Warning: /skms-domain setting is in effect. {service.lookup_domain} will be used for DNS SRV record "
                "lookup."
            )

    def lookup_domain(self, domain: str | None, act_id: str) -> None:
        target = self._target(act_id)
        if target is None:
            return
        if not self.ctx.admin:
            self.quit_error(WmiError(0x80070005, ""))
        service = target if isinstance(target, ServiceState) else target[0].service
        with self.m.lock:
            service.lookup_domain = domain
            setting = service.kms if isinstance(target, ServiceState) else self.lic._setting(target)
        if domain is not None:
            self.line(f"Key Management Service lookup domain set to {domain} successfully.")
            if setting.machine:
                self.line(
                    f"Warning: /skms setting overrides the /skms-domain setting. {setting.machine}:{setting.port} "
                    "will be used for activation."
                )
        else:
            self.line("Key Management Service lookup domain cleared successfully.")
            if setting.machine:
                kms = f"{setting.machine}:{setting.port}"
                self.line(f"Warning: /skms setting is in effect. {kms} will be used for activation.")

    def host_caching(self, disable: bool) -> None:
        try:
            with self.m.lock:
                self.lic.set_host_caching(self.lic.spp, disable, self.ctx.admin)
        except WmiError as exc:
            self.quit_error(exc)
        self.line(self.say("KMS host caching is disabled" if disable else "KMS host caching is enabled"))

    def rearm(self) -> None:
        try:
            with self.m.lock:
                self.lic.rearm(self.lic.spp, self.ctx.admin)
        except WmiError as exc:
            self.quit_error(exc)
        self.line("Command completed successfully.")
        self.line("Please restart the system for the changes to take effect.")


_Option = Callable[[_Script, int, str], Awaitable[None]]
# slmgr.vbs options (lower case, without the leading / or -) and the method that runs each
_OPTIONS: dict[str, _Option] = {
    "ipk": _Script.opt_ipk,
    "upk": _Script.opt_upk,
    "ato": _Script.opt_ato,
    "dli": _Script.opt_display,
    "dlv": _Script.opt_display,
    "xpr": _Script.opt_xpr,
    "dti": _Script.opt_dti,
    "skms": _Script.opt_skms,
    "ckms": _Script.opt_ckms,
    "skms-domain": _Script.opt_skms_domain,
    "ckms-domain": _Script.opt_ckms_domain,
    "skhc": _Script.opt_host_caching,
    "ckhc": _Script.opt_host_caching,
    "rearm": _Script.opt_rearm,
    "cpky": _Script.opt_admin_done,
    "act-type": _Script.opt_admin_done,
    **dict.fromkeys(("sai", "sri", "sprt"), _Script.opt_kms_host_setting),
    **dict.fromkeys(("sdns", "cdns", "spri", "cpri"), _Script.opt_kms_host_flag),
}
_WIN8_OPTIONS = frozenset({"skms-domain", "ckms-domain", "act-type"})  # "Unrecognized option" on Windows 7
_ADMIN_DONE = {
    "cpky": "Product key from registry cleared successfully.",
    "act-type": "Volume activation type set successfully.",
}
_KMS_HOST_ARGS = {  # option -> (its argument in the usage line, the setting's name)
    "sai": ("<Activation Interval>", "Volume activation interval"),
    "sri": ("<Renewal Interval>", "Volume renewal interval"),
    "sprt": ("<Port>", "KMS port"),
}


async def run(ctx: Ctx, args: list[str]) -> ProgResult:
    """Run ``slmgr.vbs`` with its script arguments (cscript host)."""
    script = _Script(ctx, args)
    code = 0
    try:
        await script.main()
    except _Exit as done:
        code = done.code
    return ProgResult(script.finish(), code=code & 0xFFFFFFFF)
