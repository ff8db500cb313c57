"""The answer to a Get of ``http://schemas.microsoft.com/wbem/wsman/1/config`` (``winrm get winrm/config``),
in the shape of recorded-winrs/test_wsman_update_envelope_size_*.yml, so pypsrp's
``WSMan.update_max_payload_size()`` works. Values reflect how the lab is configured."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.lab.wsman import ns


@dataclass(frozen=True)
class ServiceConfig:
    max_envelope_kb: int = 500  # Windows Server 2012+/Windows 10 default
    max_timeout_ms: int = 60000
    max_batch_items: int = 32000
    allow_unencrypted: bool = False
    basic: bool = True
    enumeration_timeout_ms: int = 240000
    idle_timeout_ms: int = 7200000
    max_shells_per_user: int = 30

    @property
    def max_envelope_bytes(self) -> int:
        return self.max_envelope_kb * 1024


def _b(value: bool) -> str:
    return "true" if value else "false"


def config_xml(cfg: ServiceConfig) -> str:
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
        "<cfg:RootSDDL>O:NSG:BAD:P(A;;GA;;;BA)(A;;GR;;;IU)S:P(AU;FA;GA;;;WD)(AU;SA;GXGW;;;WD)</cfg:RootSDDL>"
        "<cfg:MaxConcurrentOperations>4294967295</cfg:MaxConcurrentOperations>"
        "<cfg:MaxConcurrentOperationsPerUser>1500</cfg:MaxConcurrentOperationsPerUser>"
        f"<cfg:EnumerationTimeoutms>{cfg.enumeration_timeout_ms}</cfg:EnumerationTimeoutms>"
        "<cfg:MaxConnections>300</cfg:MaxConnections>"
        "<cfg:MaxPacketRetrievalTimeSeconds>120</cfg:MaxPacketRetrievalTimeSeconds>"
        f"<cfg:AllowUnencrypted>{_b(cfg.allow_unencrypted)}</cfg:AllowUnencrypted><cfg:Auth>"
        f"<cfg:Basic>{_b(cfg.basic)}</cfg:Basic><cfg:Kerberos>false</cfg:Kerberos>"
        "<cfg:Negotiate>true</cfg:Negotiate><cfg:Certificate>false</cfg:Certificate>"
        "<cfg:CredSSP>false</cfg:CredSSP><cfg:CbtHardeningLevel>Relaxed</cfg:CbtHardeningLevel></cfg:Auth>"
        "<cfg:DefaultPorts><cfg:HTTP>5985</cfg:HTTP><cfg:HTTPS>5986</cfg:HTTPS></cfg:DefaultPorts>"
        "<cfg:IPv4Filter>*</cfg:IPv4Filter><cfg:IPv6Filter>*</cfg:IPv6Filter>"
        "<cfg:EnableCompatibilityHttpListener>false</cfg:EnableCompatibilityHttpListener>"
        "<cfg:EnableCompatibilityHttpsListener>false</cfg:EnableCompatibilityHttpsListener>"
        "<cfg:CertificateThumbprint></cfg:CertificateThumbprint><cfg:AllowRemoteAccess>true</cfg:AllowRemoteAccess>"
        "</cfg:Service><cfg:Winrs><cfg:AllowRemoteShellAccess>true</cfg:AllowRemoteShellAccess>"
        f"<cfg:IdleTimeout>{cfg.idle_timeout_ms}</cfg:IdleTimeout>"
        "<cfg:MaxConcurrentUsers>10</cfg:MaxConcurrentUsers><cfg:MaxShellRunTime>2147483647</cfg:MaxShellRunTime>"
        "<cfg:MaxProcessesPerShell>25</cfg:MaxProcessesPerShell><cfg:MaxMemoryPerShellMB>1024</cfg:MaxMemoryPerShellMB>"
        f"<cfg:MaxShellsPerUser>{cfg.max_shells_per_user}</cfg:MaxShellsPerUser></cfg:Winrs></cfg:Config>"
    )
