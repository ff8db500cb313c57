"""Realistic RunResults for the results-layer tests: a 40-PC classroom run with mixed outcomes, licences,
Traditional Chinese text and nested task data. Deterministic per (seed, index) so a subprocess can rebuild
exactly what it stored."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.results.models import (
    FailureKind,
    HostResult,
    HostStatus,
    HostTaskResult,
    LicenceRecord,
    RunInfo,
    RunResult,
    TaskStatus,
)

BASE = datetime(2025, 3, 3, 0, 5, 0, tzinfo=UTC)  # Monday 08:05 in Taipei
KMS = "kms.school.example:1688"

CLOCK_SKEW = 0xC004F074  # outer code slmgr shows; diagnosis points at the timestamp error
SLIC = 0xC004F035
RETAIL_OFFICE = 0xC004F017
UNKNOWN = 0x8007FFF0

# index -> outcome for a 40-PC room; everything else ok/changed
OUTCOMES: dict[int, str] = {
    3: "clock",
    11: "clock",
    12: "clock",
    27: "clock",
    7: "slic",
    35: "slic",
    19: "retail",
    22: "unreachable",
    38: "unreachable",
    30: "auth",
}


def host_name(i: int) -> str:
    return f"pc{i}"  # no zero padding: natural sort must put pc2 before pc10


def room_for(i: int) -> str:
    return "room101" if i <= 20 else "room102"


def _licences(rng: random.Random, i: int, now: datetime, outcome: str) -> tuple[LicenceRecord, ...]:
    days = rng.choice([3, 12, 45, 90, 150, 179, 180])
    win_status = "Licensed"
    win_error: int | None = 0
    license_status = 1
    if outcome == "clock":
        win_status, license_status, win_error, days = "Notification", 5, 0xC004F06C, 0
    elif outcome == "slic":
        win_status, license_status, win_error, days = "OOBGrace", 2, SLIC, 25
    windows = LicenceRecord(
        product="windows",
        name="Windows(R), Education edition",
        channel="Volume:GVLK",
        status=win_status,
        license_status=license_status,
        days_left=days,
        expires=(now + timedelta(days=days)) if win_status == "Licensed" else None,
        kms_host=KMS,
        last_error=win_error,
        version="10.0.19045",
        edition="Education",
        partial_key="2YT43",
        cmid=str(uuid.UUID(int=rng.getrandbits(128))),
        activation_id="e0c42288-980c-4788-a014-c080d2e1926e",
    )
    if outcome == "retail":
        office = LicenceRecord(
            product="office",
            name="Office 16, Office16ProPlusR_Retail edition",
            channel="Retail",
            status="Notification",
            license_status=5,
            days_left=None,
            last_error=RETAIL_OFFICE,
            version="2016",
        )
    else:
        office = LicenceRecord(
            product="office",
            name="Office 16, Office16ProPlusVL_KMS_Client edition",
            channel="Volume:GVLK",
            status="Licensed",
            license_status=1,
            days_left=rng.choice([20, 100, 170]),
            kms_host=KMS,
            last_error=0,
            version="2016",
            partial_key="WFG99",
        )
    records = [windows, office]
    if i % 10 == 4:  # a few PCs also have Visio: two office records in one run
        records.append(
            LicenceRecord(
                product="office",
                name="Office 16, VisioProVL_KMS_Client edition",
                channel="Volume:GVLK",
                status="Licensed",
                license_status=1,
                days_left=None,  # permanent for the test: never due
                version="2016",
            )
        )
    return tuple(records)


def make_host(i: int, *, seed: int = 7, secret: str | None = None, host: str | None = None) -> HostResult:
    rng = random.Random(seed * 1000 + i)
    name = host or host_name(i)
    outcome = OUTCOMES.get(i, "changed" if i % 2 == 0 else "ok")
    started = BASE + timedelta(seconds=i)
    play = "啟用 Windows (KMS)"
    t = started
    tasks: list[HostTaskResult] = []

    def task(title: str, module: str, status: TaskStatus, **kw: Any) -> None:
        nonlocal t
        duration = rng.randint(40, 2500)
        tasks.append(
            HostTaskResult(
                host=name,
                play=kw.pop("play", play),
                task=title,
                module=module,
                status=status,
                started=t,
                duration_ms=duration,
                **kw,
            )
        )
        t = t + timedelta(milliseconds=duration + 5)

    if outcome == "unreachable":
        task(
            "Gather licence facts",
            "win_licensing",
            TaskStatus.UNREACHABLE,
            msg=f"connect to 127.0.1.{i}:5985 timed out after 10 s",
            failure=FailureKind.UNREACHABLE,
        )
        status, msg = HostStatus.UNREACHABLE, "connection timed out (PC off?)"
        licences: tuple[LicenceRecord, ...] = ()
    elif outcome == "auth":
        task(
            "Gather licence facts",
            "win_licensing",
            TaskStatus.FAILED,
            msg="HTTP 401: the account was refused",
            failure=FailureKind.AUTH,
        )
        status, msg = HostStatus.AUTH_REFUSED, "認證遭拒 (401)"
        licences = ()
    else:
        licences = _licences(rng, i, t, outcome)
        task(
            "Gather licence facts",
            "win_licensing",
            TaskStatus.OK,
            data={"products": [lic.name for lic in licences], "rc": 0, "nested": {"a": [1, 2.5, None, True]}},
            licences=licences,
        )
        task(
            "Point at the school KMS",
            "kms_client",
            TaskStatus.CHANGED if outcome != "ok" else TaskStatus.OK,
            changed=outcome != "ok",
            msg="KMS 主機已設定為 " + KMS,
            diff={"before": {"kms_host": None}, "after": {"kms_host": KMS}},
        )
        task("Install GVLK", "win_licensing", TaskStatus.SKIPPED, msg="already installed")
        if outcome == "clock":
            task(
                "Activate Windows",
                "win_licensing",
                TaskStatus.FAILED,
                msg="0xC004F074: 無法連絡金鑰管理服務 (KMS)；時間差異過大",
                error_code=CLOCK_SKEW,
                diagnosis="0xC004F06C",
                failure=FailureKind.TASK,
                data={"event_12288": "0xC004F06C", "skew_minutes": 300 + i},
            )
            status, msg = HostStatus.FAILED, "activation failed"
        elif outcome == "slic":
            task(
                "Activate Windows",
                "win_licensing",
                TaskStatus.FAILED,
                msg="0xC004F035: Invalid Volume License Key",
                error_code=SLIC,
                diagnosis="0xC004F035",
                failure=FailureKind.TASK,
            )
            status, msg = HostStatus.FAILED, "activation failed"
        elif outcome == "retail":
            task("Activate Windows", "win_licensing", TaskStatus.CHANGED, changed=True, msg="activated")
            task(
                "Activate Office",
                "office_licensing",
                TaskStatus.FAILED,
                play="啟用 Office 2016",
                msg="Office is a Retail edition; KMS cannot activate it",
                error_code=RETAIL_OFFICE,
                failure=FailureKind.TASK,
            )
            status, msg = HostStatus.FAILED, ""
        else:
            changed = outcome == "changed"
            task(
                "Activate Windows",
                "win_licensing",
                TaskStatus.CHANGED if changed else TaskStatus.OK,
                changed=changed,
                msg="產品已成功啟用。" if changed else "already licensed",
            )
            if i == 5:  # a failure that was ignored does not fail the host
                task(
                    "Optional: rearm check",
                    "win_command",
                    TaskStatus.FAILED,
                    msg="rearm count is 0",
                    error_code=UNKNOWN,
                    failure=FailureKind.TASK,
                    ignored=True,
                    data={"rc": 1, "stdout": "剩餘 Windows 重設次數: 0\r\n"},
                )
            status = HostStatus.CHANGED if changed else HostStatus.OK
            msg = ""
    if secret:
        tasks.append(
            HostTaskResult(
                host=name,
                play=play,
                task="Map share",
                module="win_command",
                status=TaskStatus.OK,
                msg=f"net use \\\\srv\\share /user:admin {secret}",
                started=t,
                data={
                    "password": secret,
                    "cmd": f"cmdkey /pass:{secret}",
                    "encoded": base64.b64encode(secret.encode()).decode(),
                    "utf16": secret.encode("utf-16-le").decode("latin-1"),
                    "ps_encoded": base64.b64encode(secret.encode("utf-16-le")).decode(),
                },
            )
        )
        msg = f"{msg} (pw {secret})"
    finished = t + timedelta(milliseconds=10)
    return HostResult(
        host=name,
        status=status,
        tasks=tuple(tasks),
        msg=msg,
        started=started,
        finished=finished,
        address=f"127.0.1.{i}",
        groups=("all", room_for(i), "windows"),
        licences=licences,
        facts={
            "os": "Windows 10 教育版",
            "timezone": "台北標準時間" if OUTCOMES.get(i) != "clock" else "Pacific Standard Time",
            "mac": f"52:54:00:00:01:{i:02x}",
            "cpu": ["x64", 4],
            **({"secret_note": secret} if secret else {}),
        },
    )


def make_info(run_id: str = "run0000000001", *, playbook: str = "playbooks/windows.yml") -> RunInfo:
    return RunInfo(
        id=run_id,
        playbook=playbook,
        inventory=("inventories/school.yml",),
        limit="room10*",
        check=False,
        tags=("activate",),
        skip_tags=("slow",),
        forks=25,
        strategy="free",
        started=BASE,
        controller="teacher-pc",
        kmsfleet_version="0.1.0",
        lang="zh-TW",
    )


def make_run(
    n: int = 40, *, seed: int = 7, run_id: str = "run0000000001", secret: str | None = None, interrupted: bool = False
) -> RunResult:
    hosts = tuple(make_host(i, seed=seed, secret=secret) for i in range(1, n + 1))
    finished = max(h.finished for h in hosts) + timedelta(seconds=1)
    return RunResult(info=make_info(run_id), hosts=hosts, finished=finished, interrupted=interrupted)
