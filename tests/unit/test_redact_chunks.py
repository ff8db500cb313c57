"""The redactor at scale (``orchestrator.redact`` chunks and digests): per-PC passwords register in linear time,
a full chunk is compiled once, the open chunk only at the next scrub, spans found by different chunks are masked
as their union, hex digests compile nothing, and scrubs from many threads stay correct while secrets arrive."""

from __future__ import annotations

import gc
import random
import re
import secrets
import threading
import weakref
from collections.abc import Iterable, Iterator

import pytest

from orchestrator import redact
from orchestrator.redact import MASK, redact_text, register_digests, register_secret, register_secrets
from orchestrator.varsfile import register_secrets as register_vars
from orchestrator.varsfile import secret_values

#: A small chunk so that a handful of secrets spreads over several chunks.
SMALL_CHUNK = 64


@pytest.fixture(autouse=True)
def no_secrets_yet() -> None:
    """Each test starts with nothing registered: another test module may register a password when it is imported
    (a connection spec built at module level), and the counts below are of this test's own chunks. The suite's
    conftest restores whatever was registered before, afterwards."""
    redact.restore(redact._Registry())


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of forms of each chunk compiled during the test, with chunks of SMALL_CHUNK forms."""
    sizes: list[int] = []
    real = redact._chunk

    def counting(forms: Iterable[str]) -> redact._Chunk:
        words = list(forms)
        sizes.append(len(words))
        return real(words)

    monkeypatch.setattr(redact, "CHUNK_FORMS", SMALL_CHUNK)
    monkeypatch.setattr(redact, "_chunk", counting)
    yield sizes


def _passwords(n: int) -> list[str]:
    return [f"Pc{i:04d}-{secrets.token_urlsafe(9)}" for i in range(n)]


def _one_pattern_output(text: str, registered: Iterable[str]) -> str:
    """What one trie pattern over every form gives (the redactor's output before chunks)."""
    forms: set[str] = set()
    for secret in registered:
        forms |= redact.renderings(secret)
    return re.compile(redact._trie_regex(forms)).sub(MASK, text)


def test_registration_compiles_each_full_chunk_once_and_the_open_chunk_lazily(compiles: list[int]) -> None:
    passwords = _passwords(42)
    for password in passwords:
        register_secret(password)
    assert redact._registry.open_forms  # some forms wait in the open chunk
    sealed = len(compiles)
    assert sealed >= 5  # several chunks, each compiled once when it filled
    assert all(SMALL_CHUNK <= size < 2 * SMALL_CHUNK for size in compiles)
    assert redact_text(f"net use /user:admin {passwords[0]}") == f"net use /user:admin {MASK}"
    assert len(compiles) == sealed + 1  # the open chunk, at the first scrub
    redact_text(f"again {passwords[-1]}")
    assert len(compiles) == sealed + 1  # nothing registered since: nothing compiled
    register_secret("Late-Arrival-77")
    assert len(compiles) == sealed + 1  # registering compiles nothing by itself
    assert redact_text("late Late-Arrival-77") == f"late {MASK}"
    assert len(compiles) == sealed + 2 and compiles[-1] < SMALL_CHUNK


def test_a_batch_registers_like_one_by_one_and_masks_every_secret(compiles: list[int]) -> None:
    passwords = _passwords(30)
    register_secrets([*passwords, None, "", "abc", passwords[0]])  # empty, too short and repeated ones skipped
    assert redact.registered_secrets()[0] == tuple(sorted(passwords))
    for password in passwords:
        text = f'{{"ansible_password": "{password}"}} and {password.encode("utf-16-le").hex()}'
        assert redact_text(text) == _one_pattern_output(text, passwords)
        assert password not in redact_text(text)


def test_a_secret_containing_another_chunks_secret_leaves_no_remainder(compiles: list[int]) -> None:
    register_secret("pass1234")
    register_secrets(_passwords(10))  # fills and seals the chunk holding pass1234
    register_secret("pass1234XYZ!")
    chunks = redact._current().matcher
    assert chunks is not None and len(chunks.chunks) >= 2
    assert redact_text("login pass1234XYZ! ok") == f"login {MASK} ok"
    assert redact_text("pass1234 then pass1234XYZ!") == f"{MASK} then {MASK}"
    assert redact_text("xpass1234XYZ!pass1234") == f"x{MASK}{MASK}"


def test_the_shorter_secret_registered_last_still_hides_the_longer_one(compiles: list[int]) -> None:
    register_secret("Winter-2026-Lab!")
    register_secrets(_passwords(10))
    register_secret("2026-Lab")  # found inside the longer one by another chunk
    assert redact_text("pw=Winter-2026-Lab! end") == f"pw={MASK} end"
    assert redact_text("year 2026-Lab") == f"year {MASK}"


def test_with_one_chunk_the_output_is_the_single_patterns(compiles: list[int]) -> None:
    register_secret("Abcd-1234")
    register_secret("1234-Wxyz")  # overlapping renderings in one chunk: one pattern's leftmost matches
    text = "Abcd-1234-Wxyz and 1234-Wxyz, QWJjZC0xMjM0 Abcd%2D1234"
    matcher = redact._current().matcher
    assert matcher is not None and len(matcher.chunks) == 1
    assert redact_text(text) == _one_pattern_output(text, ["Abcd-1234", "1234-Wxyz"])


def test_short_secrets_are_found_across_chunks(compiles: list[int]) -> None:
    register_secret("k9!z")  # shorter than the prefix index: indexed whole
    register_secrets(_passwords(10))
    register_secret("Q7-m2")
    register_secret("Ab3$xy7")
    assert redact_text("a k9!z b Q7-m2 c Ab3$xy7") == f"a {MASK} b {MASK} c {MASK}"
    assert redact_text("nothing here at all") == "nothing here at all"


def test_digests_are_masked_as_hex_in_any_case_and_compile_nothing(compiles: list[int]) -> None:
    lm, nt = "aad3b435b51404eeaad3b435b51404ee", "8846f7eaee8fb117ad06bdd830b7586c"
    clean = f"NTLMHash(lm_hash='{lm}', nt_hash='{nt.upper()}')"
    assert redact_text(clean) == clean  # remembered as clean before the hashes were registered
    register_digests((lm, nt))
    assert compiles == []
    assert redact_text(clean) == f"NTLMHash(lm_hash='{MASK}', nt_hash='{MASK}')"
    assert redact_text(f"{lm}{nt.title()}ff") == f"{MASK}{MASK}ff"  # one hex run, mixed case
    assert redact_text(nt[:-1]) == nt[:-1]
    assert redact.is_secret_value(nt.upper()) and redact.registered_digests() == tuple(sorted((lm, nt)))
    assert {nt, nt.upper()} <= redact.known_secrets()


def test_a_digest_too_short_or_not_hex_is_registered_as_a_secret() -> None:
    register_digests(("c0ffee42", "not-hex-at-all-though"))
    assert redact.registered_digests() == ()
    assert redact_text("x c0ffee42 not-hex-at-all-though") == f"x {MASK} {MASK}"


def test_known_secrets_follow_registrations() -> None:
    register_secret("Early-Bird-1")
    assert "Early-Bird-1" in redact.known_secrets()
    register_secret("Night-Owl-22")
    assert {"Early-Bird-1", "Night-Owl-22"} <= redact.known_secrets()


def test_snapshot_and_restore_forget_what_came_between() -> None:
    saved = redact.snapshot()
    register_secret("Gone-Soon-55")
    register_digests(("0123456789abcdef0123456789abcdef",))
    assert redact_text("Gone-Soon-55") == MASK
    redact.restore(saved)
    assert redact_text("Gone-Soon-55 0123456789abcdef0123456789abcdef") == (
        "Gone-Soon-55 0123456789abcdef0123456789abcdef"
    )
    with pytest.raises(TypeError):
        redact.restore(object())


def test_scrubs_from_many_threads_while_secrets_register(compiles: list[int]) -> None:
    """Every secret registered before a scrub starts is masked by it, whichever thread registers."""
    passwords = _passwords(60)
    done: list[str] = []  # registered so far (appended after registration returns)
    failures: list[str] = []
    stop = threading.Event()

    def register() -> None:
        for i, password in enumerate(passwords):
            register_secret(password)
            register_digests((f"{i:032x}",))
            done.append(password)
        stop.set()

    def scrub() -> None:
        rounds = 0
        while not stop.is_set() and rounds < 2000:
            rounds += 1
            known = list(done)
            for password in known[-3:]:
                if password in redact_text(f"logon {password} failed"):
                    failures.append(password)

    threads = [threading.Thread(target=scrub) for _ in range(3)] + [threading.Thread(target=register)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert all(redact_text(p) == MASK for p in passwords)


def test_long_texts_across_chunks_equal_the_single_patterns_output(compiles: list[int]) -> None:
    passwords = _passwords(30)
    register_secrets(passwords)
    matcher = redact._current().matcher
    assert matcher is not None and len(matcher.chunks) >= 5
    pieces = ["Activation ID: 0ff1ce00-1234-5678-9abc-def012345678 License Status: Licensed " * 4]
    for i, password in enumerate(passwords[::3]):
        raw = password.encode("utf-16-le")
        pieces += [password, repr(password), raw.hex().upper(), redact.b64_cores(raw)[i % 3].decode(), "x" * i]
    text = " | ".join(pieces)
    assert len(text) > redact.CACHE_TEXT_LEN
    assert redact_text(text) == _one_pattern_output(text, passwords)
    assert not any(p in redact_text(text) for p in passwords)


def test_contains_secret_answers_like_the_mask_across_chunks_and_digests(compiles: list[int]) -> None:
    assert not redact.contains_secret("nothing registered yet")
    passwords = _passwords(20)
    register_secrets(passwords)
    register_digests(("fedcba9876543210" * 2,))
    for text in (f"a {passwords[0]} b", f"x{passwords[-1].encode('utf-16-le').hex()}", "FEDCBA9876543210" * 2):
        assert redact.contains_secret(text) and redact_text(text) != text
    for text in ("", "plain text", passwords[3][:-1], "fedcba9876543210"):
        assert not redact.contains_secret(text) and redact_text(text) == text


def test_a_replaced_open_chunk_is_freed() -> None:
    """Registrations during a run replace the open chunk's pattern; ``re``'s own cache must not keep the old ones
    (300 of them held 550 MB)."""
    register_secret("Before-The-Run-1")
    assert redact_text("Before-The-Run-1") == MASK
    matcher = redact._current().matcher
    assert matcher is not None
    old = weakref.ref(matcher.chunks[-1].pattern)
    del matcher
    register_secret("During-The-Run-2")
    assert redact_text("During-The-Run-2 Before-The-Run-1") == f"{MASK} {MASK}"
    gc.collect()
    assert old() is None


def test_a_vars_mapping_registers_its_secret_values_in_one_batch(compiles: list[int]) -> None:
    variables = {
        "ansible_password": "Room12-Pc03-x9",
        "kms_port": 1688,
        "nested": {"api_token": 123456, "winrm_pass": "{{ lookup('env', 'PW') }}", "note": "Room12-Pc03"},
        "enabled_password": True,
    }
    assert list(secret_values(variables)) == ["Room12-Pc03-x9", "123456"]
    register_vars(variables)
    assert redact.registered_secrets()[0] == ("123456", "Room12-Pc03-x9")
    assert compiles == []  # nothing compiled until a scrub needs it
    assert redact_text("pw Room12-Pc03-x9 port 1688") == f"pw {MASK} port 1688"
    assert len(compiles) == 1


def test_the_prefix_tree_matches_the_longest_form_like_a_longest_first_alternation() -> None:
    rng = random.Random(7)
    for _ in range(200):
        alphabet = rng.choice(["ab", "ab.*", "xy\\(|)", "0123456789abcdef"])
        words = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))) for _ in range(rng.randint(1, 25))}
        flat = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        text = "".join(rng.choice(alphabet + " ") for _ in range(80))
        assert re.sub(redact._trie_regex(words), MASK, text) == re.sub(flat, MASK, text), (words, text)
    assert redact._trie_regex([]) == ""


def test_a_large_text_with_many_chunks_is_scrubbed_in_bounded_memory(compiles: list[int]) -> None:
    """With several chunks a text is looked up by its 8-character starts; only the hits are kept, one block at a
    time, so a PC's multi-megabyte output does not cost a set of all its substrings (~90 bytes per character)."""
    import tracemalloc

    passwords = _passwords(40)
    register_secrets(passwords)
    assert len(compiles) >= 2  # several chunks: the prefix index is in use
    rng = random.Random(7)
    filler = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(1_000_000))
    text = filler[:500_000] + passwords[17] + filler[500_000:]
    redact_text("warm the scrubber up")
    tracemalloc.start()
    try:
        out = redact_text(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert passwords[17] not in out and MASK in out
    assert len(out) == len(text) - len(passwords[17]) + len(MASK)
    assert peak < 3 * len(text) + 16 * 1024 * 1024  # the result and one block's substrings, not 90 MB


def test_a_digest_that_is_not_hex_is_kept_as_given() -> None:
    register_digests(["Not-A-Hex-Token-42"])
    assert "Not-A-Hex-Token-42" not in redact_text("token Not-A-Hex-Token-42 here")
