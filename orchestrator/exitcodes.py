"""Process exit codes: one meaning each (README "Exit codes")."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every host ok (changed counts as ok)
    TASK_FAILED = 2  # a task failed on some host
    UNREACHABLE = 3  # some host unreachable, none failed
    INVALID_INPUT = 4  # inventory, playbook, spec or arguments are wrong
    AUTH_REFUSED = 5  # authentication refused by some host (and nothing worse)
    INTERRUPTED = 99  # Ctrl-C / SIGTERM; results gathered so far are kept
    INTERNAL_ERROR = 250  # a bug in kmsfleet: please report it
