"""``vars_prompt`` answered on the terminal, as ``ansible-playbook`` asks them."""

from __future__ import annotations

import getpass
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.errors import InputError, Location

if TYPE_CHECKING:
    from orchestrator.playbook.models import Play


@dataclass(frozen=True)
class PromptSpec:
    """One ``vars_prompt`` entry as the plan carries it (asked before the run; ``-e name=…`` skips it)."""

    name: str
    prompt: str | None = None
    default: Any = None
    private: bool = True
    confirm: bool = False
    location: Location | None = None


def prompt_specs(play: Play) -> tuple[PromptSpec, ...]:
    """A loaded play's ``vars_prompt`` as plan data."""
    return tuple(PromptSpec(p.name, p.prompt, p.default, p.private, p.confirm, p.location) for p in play.vars_prompt)


def ask_on_terminal(prompt: Any) -> Any:
    """Ask one ``VarPrompt`` (private: no echo; confirm: twice). Without a terminal, use its default or fail."""
    text = str(prompt.prompt or prompt.name)
    if not sys.stdin.isatty():
        if prompt.default is not None:
            return prompt.default
        raise InputError(
            f"vars_prompt '{prompt.name}' needs an answer and there is no terminal to ask it on",
            prompt.location,
            hint=f"pass it with -e {prompt.name}=…, or give the prompt a default",
        )
    suffix = f" [{prompt.default}]" if prompt.default is not None and not prompt.private else ""
    for _attempt in range(3):
        answer = _read(f"{text}{suffix}: ", prompt.private)
        if prompt.confirm and _read(f"confirm {text}: ", prompt.private) != answer:
            sys.stderr.write("***** VALUES ENTERED DO NOT MATCH ****\n")
            continue
        if not answer and prompt.default is not None:
            return prompt.default
        return answer
    raise InputError(f"vars_prompt '{prompt.name}': the two answers did not match three times", prompt.location)


def _read(label: str, private: bool) -> str:
    return getpass.getpass(label) if private else input(label)


__all__ = ["PromptSpec", "ask_on_terminal", "prompt_specs"]
