"""The redactor's memos (``orchestrator.redact._Scrubber``): same answers as a fresh scan, never stale after a
secret or a secret name is registered, bounded whatever texts come in."""

from __future__ import annotations

from datetime import UTC, datetime
from types import MappingProxyType

from orchestrator import redact
from orchestrator.redact import (
    CACHE_ENTRIES,
    CACHE_TEXT_LEN,
    MASK,
    redact_plain,
    redact_text,
    register_secret,
    register_secret_name,
)
from orchestrator.results.models import freeze, thaw


def test_one_pass_equals_thaw_then_redact_on_frozen_results() -> None:
    register_secret("Hunter2-Blue")
    register_secret_name("kmsfleet_unlock_code")
    when = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)
    value = freeze(
        {
            "msg": "logon as admin/Hunter2-Blue failed",
            "api_token": "abc",
            "kmsfleet_unlock_code": "1234-5678",
            "empty_password": "",
            "nested": [{"seen": when, "Hunter2-Blue": ("a", 1, None, True)}],
            "tuple": (when, "Hunter2-Blue", 2.5),
            7: "number key",
        }
    )
    assert isinstance(value, MappingProxyType)  # what a finished host carries
    assert redact_plain(value) == redact.redact(thaw(value))
    plain = redact_plain(value)
    assert plain["api_token"] == MASK and plain["kmsfleet_unlock_code"] == MASK and plain["empty_password"] == ""
    assert plain["nested"][0] == {"seen": when.isoformat(), MASK: ["a", 1, None, True]}
    assert "Hunter2-Blue" not in repr(plain)


def test_a_text_seen_before_its_secret_was_registered_is_scrubbed_afterwards() -> None:
    text = "net use \\\\kms\\c$ /user:admin Zebra-Cloud-77"
    key = "kmsfleet_door_code"
    assert redact_text(text) == text  # remembered as clean
    assert redact.redact({key: "42-42"}) == {key: "42-42"}
    register_secret("Zebra-Cloud-77")
    register_secret_name(key)
    assert redact_text(text) == f"net use \\\\kms\\c$ /user:admin {MASK}"
    assert redact.redact({key: "42-42"}) == {key: MASK}


def test_the_memo_stays_bounded_and_long_texts_are_still_scanned() -> None:
    register_secret("Orbit-Lantern-9")
    for n in range(CACHE_ENTRIES + 50):
        assert redact_text(f"pc{n:05d} Orbit-Lantern-9") == f"pc{n:05d} {MASK}"
    assert 0 < len(redact._current().texts) <= CACHE_ENTRIES
    long_text = "x" * (CACHE_TEXT_LEN + 1) + "Orbit-Lantern-9"
    assert redact_text(long_text) == "x" * (CACHE_TEXT_LEN + 1) + MASK
    assert long_text not in redact._current().texts
