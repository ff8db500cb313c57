"""Windows time zones the lab knows (ids, captions, bias and daylight-saving rules as Windows' time zone
database gives them) and the local time and UTC offset of a PC in one. A leaf: the WMI classes, the command
line tools and the PC profiles read it."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone


@dataclass(frozen=True, slots=True)
class DstRule:
    """SYSTEMTIME-style rule: month, week of month (5 = last), day of week (0 = Sunday), hour."""

    start_month: int
    start_week: int
    start_hour: int
    end_month: int
    end_week: int
    end_hour: int


@dataclass(frozen=True, slots=True)
class TimeZoneInfo:
    id: str
    caption: str
    standard_name: str
    daylight_name: str
    bias: int  # minutes east of UTC (Win32_TimeZone.Bias)
    dst: DstRule | None


_US = DstRule(3, 2, 2, 11, 1, 2)


_UK = DstRule(3, 5, 1, 10, 5, 2)


TIME_ZONES: dict[str, TimeZoneInfo] = {
    tz.id.lower(): tz
    for tz in (
        TimeZoneInfo(
            "Taipei Standard Time", "(UTC+08:00) Taipei", "Taipei Standard Time", "Taipei Daylight Time", 480, None
        ),
        TimeZoneInfo(
            "China Standard Time",
            "(UTC+08:00) Beijing, Chongqing, Hong Kong, Urumqi",
            "China Standard Time",
            "China Daylight Time",
            480,
            None,
        ),
        TimeZoneInfo(
            "Tokyo Standard Time",
            "(UTC+09:00) Osaka, Sapporo, Tokyo",
            "Tokyo Standard Time",
            "Tokyo Daylight Time",
            540,
            None,
        ),
        TimeZoneInfo(
            "UTC",
            "(UTC) Coordinated Universal Time",
            "Coordinated Universal Time",
            "Coordinated Universal Time",
            0,
            None,
        ),
        TimeZoneInfo(
            "GMT Standard Time",
            "(UTC+00:00) Dublin, Edinburgh, Lisbon, London",
            "GMT Standard Time",
            "GMT Daylight Time",
            0,
            _UK,
        ),
        TimeZoneInfo(
            "Pacific Standard Time",
            "(UTC-08:00) Pacific Time (US & Canada)",
            "Pacific Standard Time",
            "Pacific Daylight Time",
            -480,
            _US,
        ),
        TimeZoneInfo(
            "Eastern Standard Time",
            "(UTC-05:00) Eastern Time (US & Canada)",
            "Eastern Standard Time",
            "Eastern Daylight Time",
            -300,
            _US,
        ),
        TimeZoneInfo(
            "Central Standard Time",
            "(UTC-06:00) Central Time (US & Canada)",
            "Central Standard Time",
            "Central Daylight Time",
            -360,
            _US,
        ),
    )
}


def time_zone(tz_id: str) -> TimeZoneInfo:
    return TIME_ZONES[tz_id.lower()]


def _nth_sunday(year: int, month: int, week: int) -> int:
    days = [d for d in range(1, calendar.monthrange(year, month)[1] + 1) if calendar.weekday(year, month, d) == 6]
    return days[-1] if week >= 5 else days[week - 1]


def in_dst(tz: TimeZoneInfo, utc: datetime) -> bool:
    if tz.dst is None:
        return False
    rule = tz.dst
    local_std = (utc.astimezone(UTC) + timedelta(minutes=tz.bias)).replace(tzinfo=None)
    year = local_std.year
    start = datetime(year, rule.start_month, _nth_sunday(year, rule.start_month, rule.start_week), rule.start_hour)
    end = datetime(year, rule.end_month, _nth_sunday(year, rule.end_month, rule.end_week), rule.end_hour)
    end -= timedelta(hours=1)  # the end time is given in daylight time
    return start <= local_std < end


def utc_offset_minutes(tz: TimeZoneInfo, utc: datetime) -> int:
    return tz.bias + (60 if in_dst(tz, utc) else 0)


def local_time(tz: TimeZoneInfo, utc: datetime) -> datetime:
    """``utc`` expressed in the zone's local time, as an aware datetime with that fixed offset."""
    return utc.astimezone(timezone(timedelta(minutes=utc_offset_minutes(tz, utc))))


# ---------------------------------------------------------------------------------------------------------
# Class definitions
# ---------------------------------------------------------------------------------------------------------
