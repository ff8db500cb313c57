"""The WinRM service settings of one simulated PC, and the answer to a Get of
``http://schemas.microsoft.com/wbem/wsman/1/config`` (``winrm get winrm/config``) in the shape of pypsrp's
recordings ``test_wsman_update_envelope_size_*.yml`` (so pypsrp's ``WSMan.update_max_payload_size()`` works).

Two generations of defaults (docs/lab-winrm-limits.md lists every figure with its source):

- **WinRM 3.0** (Windows 8/10/11, Server 2012+): MaxEnvelopeSizekb 500, MaxShellsPerUser 30,
  MaxConcurrentOperationsPerUser 1500, IdleTimeout 7 200 000 ms, EnumerationTimeoutms 240 000, MaxConnections
  300 — Microsoft, "Installation and configuration for Windows Remote Management" and "Quotas" (Win32 WinRM
  docs); pypsrp's recordings of a real host show the same ``cfg:Config`` values.
- **WinRM 2.0** (Windows 7 / Server 2008 R2): MaxEnvelopeSizekb 150 (MS-WSMV 2.2.4.10: "SHOULD be 500 but MAY be
  150"), MaxShellsPerUser 5 (PowerShell Team blog "Configuring WSMAN Limits", 2010: "maximum number of 5
  concurrent shells"), MaxConcurrentOperationsPerUser 15 (a real WinRM 2.0 fault recorded by zenoss/txwinrm:
  "maximum number of 15 concurrent operations"; test-kitchen: "Windows 7 and Server 2008 R2 by default are
  allowed no more than 15 commands per session"), IdleTimeout 180 000 ms, MaxConcurrentUsers 5,
  MaxProcessesPerShell 15, MaxMemoryPerShellMB 150, MaxConnections 25, EnumerationTimeoutms 60 000 (MS-WSMV
  2.2.4.42 WinrsType defaults; the old "Installation and Configuration" page's WinRM 2.0 notes; a published
  ``winrm get winrm/config`` of a WinRM 2.0 host).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from orchestrator.lab.wsman import ns

# RootSDDL as each generation ships it (the 3.0 value is in pypsrp's recordings; 2.0 has no Interactive Users ACE)
_SDDL_V3 = "O:NSG:BAD:P(A;;GA;;;BA)(A;;GR;;;IU)S:P(AU;FA;GA;;;WD)(AU;SA;GXGW;;;WD)"
_SDDL_V2 = "O:NSG:BAD:P(A;;GA;;;BA)S:P(AU;FA;GA;;;WD)(AU;SA;GWGX;;;WD)"


@dataclass(frozen=True)
class ServiceConfig:
    max_envelope_kb: int = 500
    max_timeout_ms: int = 60000
    max_batch_items: int = 32000
    allow_unencrypted: bool = False
    basic: bool = True
    enumeration_timeout_ms: int = 240000
    idle_timeout_ms: int = 7200000
    max_shells_per_user: int = 30
    max_concurrent_operations_per_user: int = 1500
    max_connections: int = 300
    max_concurrent_users: int = 10
    max_processes_per_shell: int = 25
    max_memory_per_shell_mb: int = 1024
    winrm_version: int = 3  # 2 = WinRM 2.0 (Windows 7), 3 = WinRM 3.0 and later

    @property
    def max_envelope_bytes(self) -> int:
        return self.max_envelope_kb * 1024

    @property
    def idle_timeout_s(self) -> float:
        return self.idle_timeout_ms / 1000.0


WINRM3 = ServiceConfig()
WINRM2 = ServiceConfig(
    max_envelope_kb=150,
    enumeration_timeout_ms=60000,
    idle_timeout_ms=180000,
    max_shells_per_user=5,
    max_concurrent_operations_per_user=15,
    max_connections=25,
    max_concurrent_users=5,
    max_processes_per_shell=15,
    max_memory_per_shell_mb=150,
    winrm_version=2,
)


def winrm_version_for(os_name: str) -> int:
    """Windows 7 ships WinRM 2.0 (Windows Management Framework 2.0 is built in); every other OS the lab models
    (Windows 10/11, Server 2016/2019) ships WinRM 3.0 or later."""
    return 2 if "windows 7" in os_name.lower() else 3


def service_config_for(
    os_name: str, *, allow_unencrypted: bool = False, max_envelope_kb: int | None = None
) -> ServiceConfig:
    """The defaults of the PC's WinRM generation; ``max_envelope_kb`` overrides MaxEnvelopeSizekb when given
    (``winrm set winrm/config @{MaxEnvelopeSizekb=…}``)."""
    base = WINRM2 if winrm_version_for(os_name) == 2 else WINRM3
    cfg = replace(base, allow_unencrypted=allow_unencrypted)
    if max_envelope_kb is not None:
        cfg = replace(cfg, max_envelope_kb=max_envelope_kb)
    return cfg


def _b(value: bool) -> str:
    return "true" if value else "false"


def config_xml(cfg: ServiceConfig) -> str:
    sddl = _SDDL_V2 if cfg.winrm_version == 2 else _SDDL_V3
    return (
        f'<cfg:Config xmlns:cfg="{ns.CFG}"><cfg:MaxEnvelopeSizekb>{cfg.max_envelope_kb}</cfg:MaxEnvelopeSizekb>'
        f"<cfg:MaxTimeoutms>{cfg.max_timeout_ms}</cfg:MaxTimeoutms>"
        f"<cfg:MaxBatchItems>{cfg.max_batch_items}</cfg:MaxBatchItems>"
        "<cfg:MaxProviderRequests>4294967295</cfg:MaxProviderRequests>"
        "<cfg:Client><cfg:NetworkDelayms>5000</cfg:NetworkDelayms><cfg:URLPrefix>wsman</cfg:URLPrefix>"
        "<cfg:AllowUnencrypted>false</cfg:AllowUnencrypted><cfg:Auth><cfg:Basic>true</cfg:Basic>"
        "<cfg:Digest>true</cfg:Digest><cfg:Kerberos>true</cfg:Kerberos><cfg:Negotiate>true</cfg:Negotiate>"
        "<cfg:Certificate>true</cfg:Certificate><cfg:CredSSP>false</cfg:CredSSP></cfg:Auth><cfg:DefaultPorts>"
        "<cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts><cfg:TrustedHosts>"
        "</cfg:TrustedHosts></cfg:Client><cfg:Service>"
        f"<cfg:RootSDDL>{sddl}</cfg:RootSDDL>"
        "<cfg:MaxConcurrentOperations>4294967295</cfg:MaxConcurrentOperations>"
        f"<cfg:MaxConcurrentOperationsPerUser>{cfg.max_concurrent_operations_per_user}"
        "</cfg:MaxConcurrentOperationsPerUser>"
        f"<cfg:EnumerationTimeoutms>{cfg.enumeration_timeout_ms}</cfg:EnumerationTimeoutms>"
        f"<cfg:MaxConnections>{cfg.max_connections}</cfg:MaxConnections>"
        "<cfg:MaxPacketRetrievalTimeSeconds>120</cfg:MaxPacketRetrievalTimeSeconds>"
        f"<cfg:AllowUnencrypted>{_b(cfg.allow_unencrypted)}</cfg:AllowUnencrypted><cfg:Auth>"
        f"<cfg:Basic>{_b(cfg.basic)}</cfg:Basic><cfg:Kerberos>false</cfg:Kerberos>"
        "<cfg:Negotiate>true</cfg:Negotiate><cfg:Certificate>false</cfg:Certificate>"
        "<cfg:CredSSP>false</cfg:CredSSP><cfg:CbtHardeningLevel>Relaxed</cfg:CbtHardeningLevel></cfg:Auth>"
        "<cfg:DefaultPorts><cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts>"
        "<cfg:IPv4Filter>*</cfg:IPv4Filter><cfg:IPv6Filter>*</cfg:IPv6Filter>"
        "<cfg:EnableCompatibilityHttpListener>false</cfg:EnableCompatibilityHttpListener>"
        "<cfg:EnableCompatibilityHttpsListener>false</cfg:EnableCompatibilityHttpsListener>"
        "<cfg:CertificateThumbprint></cfg:CertificateThumbprint>"
        + ("<cfg:AllowRemoteAccess>true</cfg:AllowRemoteAccess>" if cfg.winrm_version >= 3 else "")
        + "</cfg:Service><cfg:Winrs><cfg:AllowRemoteShellAccess>true</cfg:AllowRemoteShellAccess>"
        f"<cfg:IdleTimeout>{cfg.idle_timeout_ms}</cfg:IdleTimeout>"
        f"<cfg:MaxConcurrentUsers>{cfg.max_concurrent_users}</cfg:MaxConcurrentUsers>"
        "<cfg:MaxShellRunTime>2147483647</cfg:MaxShellRunTime>"
        f"<cfg:MaxProcessesPerShell>{cfg.max_processes_per_shell}</cfg:MaxProcessesPerShell>"
        f"<cfg:MaxMemoryPerShellMB>{cfg.max_memory_per_shell_mb}</cfg:MaxMemoryPerShellMB>"
        f"<cfg:MaxShellsPerUser>{cfg.max_shells_per_user}</cfg:MaxShellsPerUser></cfg:Winrs></cfg:Config>"
    )
