"""No function over 60 lines of code in ``orchestrator/``, ``benchmarks/`` and ``dev.py``.

A line of code is a non-blank line that is not a comment and not part of the docstring; a function or class
nested inside a function is counted on its own (its lines are not the outer function's). ruff's PLR0915 counts
statements, which lets a function of a few long statements grow far past a screen; this counts what a reader
scrolls through. ``ALLOWED`` names the few declarative tables kept long on purpose, each with its reason; an
entry that no longer exists or is no longer too long fails, so the list cannot go stale."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_LINES = 60

#: "path:function" (path relative to the repository) → why it may be longer than MAX_LINES.
ALLOWED: dict[str, str] = {
    # other branch: entries below are split on other helpers' branches; delete each once merged.
}

_NESTED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def _sources() -> Iterator[Path]:
    for top in ("orchestrator", "benchmarks"):
        for path in sorted((REPO / top).rglob("*.py")):
            if not any(part.startswith(".") for part in path.relative_to(REPO).parts):
                yield path
    yield REPO / "dev.py"


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return set(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return set()


def _nested_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[int]:
    lines: set[int] = set()
    for sub in ast.walk(node):
        if sub is not node and isinstance(sub, _NESTED):
            start = min([sub.lineno, *(d.lineno for d in sub.decorator_list)])
            lines |= set(range(start, (sub.end_lineno or sub.lineno) + 1))
    return lines


def code_lines(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of code of ``node`` itself: no blank, comment or docstring line, no nested function or class."""
    skip = _docstring_lines(node) | _nested_lines(node)
    end = node.end_lineno or node.lineno
    counted = (lines[i - 1].strip() for i in range(node.lineno, end + 1) if i not in skip)
    return sum(1 for text in counted if text and not text.startswith("#"))


def long_functions() -> dict[str, int]:
    """Every function over MAX_LINES lines of code, as "path:name" → its lines of code."""
    found: dict[str, int] = {}
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, _FUNCTIONS) and (count := code_lines(lines, node)) > MAX_LINES:
                found[f"{path.relative_to(REPO).as_posix()}:{node.name}"] = count
    return found


def test_no_function_over_the_limit() -> None:
    too_long = {name: count for name, count in long_functions().items() if name not in ALLOWED}
    listing = "\n".join(f"  {name}: {count} lines of code" for name, count in sorted(too_long.items()))
    assert not too_long, f"functions over {MAX_LINES} lines of code (split them by meaning):\n{listing}"


def test_allowlist_is_not_stale() -> None:
    stale = sorted(set(ALLOWED) - set(long_functions()))
    assert not stale, f"ALLOWED entries that are no longer over {MAX_LINES} lines (remove them): {stale}"


def test_counting_skips_docstring_comments_blanks_and_nested_functions() -> None:
    source = '''
def outer():
    """Doc
    string."""
    # a comment
    a = 1

    def inner():
        return 2
    return a
'''
    tree = ast.parse(source)
    outer = tree.body[0]
    assert isinstance(outer, ast.FunctionDef)
    inner = outer.body[2]
    assert isinstance(inner, ast.FunctionDef)
    lines = source.splitlines()
    assert code_lines(lines, outer) == 3  # def, a = 1, return a
    assert code_lines(lines, inner) == 2
