"""The one place templates render: Ansible-flavoured Jinja2 in a sandbox.

``Templar(variables, base_dir=..., context=...)`` renders values the way Ansible does:

- ``render(value)`` walks dicts and lists; a string that is exactly one ``{{ expr }}`` returns the native value
  (an int stays an int, a list stays a list); any other template renders to text. ``UnsafeText`` (``!unsafe``)
  is never templated.
- Variables whose values are templates themselves are resolved lazily, on first use, with loop detection and a
  depth limit — exactly one level of Ansible's "templates all the way down".
- ``evaluate(expr)`` is ``when`` / ``failed_when`` / ``changed_when`` / ``until``: bare expressions, lists are
  AND, booleans pass through. A condition that yields a *string* is refused (``"false"`` is truthy in Python,
  which is never what the author meant); Ansible 2.19 refuses it too.
- Every failure is a ``TemplateError`` naming the undefined variable, the caller's context (task and host) and
  a did-you-mean.

The environment is an ``ImmutableSandboxedEnvironment`` with ``StrictUndefined`` semantics (chainable the way
Ansible's undefined is, so ``result.stdout | default('')`` works). On top of Jinja's sandbox (no ``__class__``,
no ``__globals__``, no mutation of lists/dicts) a per-render budget bounds loop iterations, calls, wall time,
string and list sizes, exponentiation and repetition, so a template cannot eat the controller's memory or CPU.

Modules, one job each (lower ones never import higher ones):

- ``limits`` — the budget, the size limits and the errors a refused template raises;
- ``regexes`` — regular expressions with a time limit;
- ``frozen`` — ``FrozenVars``: a finished PC's variables as one compressed blob, decoded on access;
- ``values`` — what is a template, ``omit``, ``!unsafe``, lazy mappings, native results as plain data;
- ``sandbox`` — the Jinja2 sandbox (undefined values, lexer rule, AST guard, operator/call checks);
- ``filters`` / ``tests`` — Ansible's filters and tests;
- ``environment`` — the configured environment, compile cache and ``check_template``;
- ``lookups`` — lookup plugins (``LOOKUPS``, replaceable per process);
- ``templar`` — ``Templar``;
- ``hostvars`` — ``HostVars``: every PC's variables, each rendered in that PC's own context.
"""

from __future__ import annotations

from orchestrator.errors import TemplateError
from orchestrator.templating.environment import check_template
from orchestrator.templating.filters import f_subelements
from orchestrator.templating.frozen import FrozenVars
from orchestrator.templating.hostvars import HostVars
from orchestrator.templating.lookups import LOOKUPS
from orchestrator.templating.templar import Templar
from orchestrator.templating.values import (
    OMIT,
    LazyMapping,
    freeze_vars,
    has_template,
    is_template,
    mark_unsafe,
    remove_omitted,
)

#: The lookup table under its former name (the distributed worker narrows ``env``/``file`` in place).
_LOOKUPS = LOOKUPS

__all__ = [
    "LOOKUPS",
    "OMIT",
    "FrozenVars",
    "HostVars",
    "LazyMapping",
    "Templar",
    "TemplateError",
    "check_template",
    "f_subelements",
    "freeze_vars",
    "has_template",
    "is_template",
    "mark_unsafe",
    "remove_omitted",
]
