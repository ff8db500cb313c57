"""What the playbook loader needs to know about modules: the catalogue protocol.

The module registry (``orchestrator.modules``) implements ``ModuleCatalog``; the loader never imports it, so
the front end stays free of transport code and unit tests use a small fake catalogue.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ModuleSpec(Protocol):
    """One module as the loader sees it."""

    #: canonical short name (``win_command``)
    name: str
    #: argument that receives free-form text (``"cmd"`` for ``win_command: whoami``); None = no free form
    free_form: str | None

    def check_args(self, args: Mapping[str, Any]) -> list[str]:
        """Problems with ``args`` (empty when fine), e.g. ``"unknown argument 'comand' (expected one of: cmd,
        argv, chdir, creates, removes) — did you mean 'cmd'?"``. Values containing Jinja2 (see
        ``orchestrator.templating.is_template``) are not type-checked: they are only known per host.
        Values written as ``key=value`` text arrive as strings (``seconds=5`` → ``"5"``): accept what
        Ansible coerces (``"5"`` for an int, ``"yes"`` for a bool)."""
        ...


@runtime_checkable
class ModuleCatalog(Protocol):
    def get(self, name: str) -> ModuleSpec | None:
        """The module called ``name`` (canonical short name), or None."""
        ...

    def names(self) -> Iterable[str]:
        """Every module name (used for did-you-mean suggestions)."""
        ...


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The closest choice to ``word`` (or None): for ``" — did you mean 'x'?"`` messages."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return match[0] if match else None
