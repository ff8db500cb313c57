"""Ansible's ``--tags`` / ``--skip-tags`` rules, including the special tags.

- ``always`` runs unless skipped explicitly (``--skip-tags always``, or ``--skip-tags all`` with it);
- ``never`` does not run unless one of its other tags (or ``never``) is asked for;
- ``--tags tagged`` / ``untagged`` select tasks with / without tags; ``--tags all`` (the default) runs
  everything except ``never``.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.playbook.models import Block, Task

UNTAGGED = frozenset({"untagged"})


def should_run(task: Task | Block, tags: Iterable[str] | None, skip_tags: Iterable[str] | None) -> bool:
    """Whether ``task`` (its effective, inherited tags) runs under ``--tags``/``--skip-tags``."""
    own = frozenset(task.tags) or UNTAGGED
    only = frozenset(tags or ()) or frozenset({"all"})
    skip = frozenset(skip_tags or ())
    if "always" in own or ("all" in only and "never" not in own) or not own.isdisjoint(only):
        run = True
    else:
        run = "tagged" in only and own != UNTAGGED and "never" not in own
    if run and skip:
        if "all" in skip:
            run = "always" in own and "always" not in skip
        elif not own.isdisjoint(skip) or ("tagged" in skip and own != UNTAGGED):
            run = False
    return run
