"""``load_inventory(sources)``: one or more ``-i`` sources (files, directories, ``host1,host2,`` lists)
merged in order, with ``group_vars/`` and ``host_vars/`` beside each source."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator import vault
from orchestrator.errors import InputError, Location
from orchestrator.hostranges import RangeError, expand
from orchestrator.inventory.builder import InventoryBuilder
from orchestrator.inventory.hostpattern import split_port
from orchestrator.inventory.ini_source import parse_ini_inventory
from orchestrator.inventory.model import Inventory, SourceVars
from orchestrator.inventory.vars_dirs import load_vars_dir
from orchestrator.inventory.yaml_source import parse_yaml_inventory
from orchestrator.yamlsource import load_yaml_text, read_text_file

YAML_EXTENSIONS = (".yml", ".yaml", ".json")
INI_EXTENSIONS = (".ini",)
# Ansible's default INVENTORY_IGNORE_EXTS
IGNORED_EXTENSIONS = (".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry")
VARS_DIRS = ("group_vars", "host_vars")
MAX_SOURCE_FILES = 1000
_YAML_START = re.compile(r"^[\w.-]+:\s*(#.*)?$")
_INI_SECTION = re.compile(r"^\[[^\]]+\]\s*([#;].*)?$")


def load_inventory(sources: Sequence[str], *, playbook_dir: str | Path | None = None) -> Inventory:
    """Load and merge inventory sources (in order: later sources add hosts and override variables).

    ``playbook_dir``: the ``group_vars/`` and ``host_vars/`` beside the playbook count too, as in Ansible, each
    tier after the inventory's own (inventory ``group_vars/all`` < playbook ``group_vars/all`` < inventory
    ``group_vars/<group>`` < playbook ``group_vars/<group>`` …)."""
    if isinstance(sources, str):
        sources = [sources]
    if not sources:
        raise InputError("no inventory given", hint="pass -i INVENTORY (a YAML/INI file, a directory, or 'pc01,pc02,')")
    builder = InventoryBuilder()
    source_vars: list[SourceVars] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            files = _directory_files(path)
            if not files:
                builder.warnings.append(f"{path}: the inventory directory has no inventory files")
            for file in files:
                _load_file(file, builder)
            basedir = path
        elif path.is_file():
            _load_file(path, builder)
            basedir = path.parent
        elif "," in source:
            _load_host_list(source, builder)
            continue
        else:
            raise InputError(
                "inventory not found",
                Location(source),
                hint="give a YAML or INI file, a directory of them, or a host list like 'pc01,pc02,'",
            )
        source_vars.append(
            SourceVars(str(path), load_vars_dir(basedir / "group_vars"), load_vars_dir(basedir / "host_vars"))
        )
    if playbook_dir is not None:
        pb_dir = Path(playbook_dir)
        known = {
            Path(sv.source).resolve() if Path(sv.source).is_dir() else Path(sv.source).resolve().parent
            for sv in source_vars
        }
        if pb_dir.resolve() not in known:
            source_vars.append(
                SourceVars(str(pb_dir), load_vars_dir(pb_dir / "group_vars"), load_vars_dir(pb_dir / "host_vars"))
            )
    _check_templates(builder)
    return Inventory(builder, source_vars)


def _check_templates(builder: InventoryBuilder) -> None:
    """Compile (never render) every templated variable value of the inventory's hosts and groups, so a syntax
    error or a sandbox escape (``{{ lipsum.__globals__ }}``) fails the load with exit 4 before any PC is
    contacted, as it does in a playbook."""
    from orchestrator.templating import check_template

    def walk(value: Any, depth: int = 0) -> str | None:
        if isinstance(value, str):
            return check_template(value)
        if depth < 20 and isinstance(value, dict | list | tuple):
            for item in value.values() if isinstance(value, dict) else value:
                problem = walk(item, depth + 1)
                if problem:
                    return problem
        return None

    entities: list[tuple[str, dict[str, Any], Location | None]] = [
        (f"host '{h.name}'", h.vars, h.location) for h in builder.hosts.values()
    ]
    entities += [(f"group '{g.name}'", g.vars, g.location) for g in builder.groups.values()]
    for what, variables, location in entities:
        for key, value in variables.items():
            problem = walk(value)
            if problem:
                raise InputError(f"{what}, variable '{key}': {problem}", location)


def _directory_files(directory: Path) -> list[Path]:
    out: list[Path] = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith(".") or entry.name in VARS_DIRS:
            continue
        if entry.is_dir():
            out.extend(_directory_files(entry))
        elif not entry.name.endswith(IGNORED_EXTENSIONS):
            out.append(entry)
        if len(out) > MAX_SOURCE_FILES:
            raise InputError(f"more than {MAX_SOURCE_FILES} inventory files", Location(str(directory)))
    return out


def _load_file(path: Path, builder: InventoryBuilder) -> None:
    filename = str(path)
    text = read_text_file(path)
    if vault.is_encrypted(text):  # a whole inventory file encrypted with Ansible Vault
        text = vault.decrypt_text(text, Location(filename), "this inventory file")
        before = _vars_snapshot(builder)
        try:
            _parse_file(path, text, builder)
        finally:  # every value the encrypted file set is a secret, whatever its name (as a vaulted vars file)
            _register_new_values(before, builder)
        return
    _parse_file(path, text, builder)


def _vars_snapshot(builder: InventoryBuilder) -> dict[tuple[str, str], dict[str, Any]]:
    snapshot = {("host", name): dict(entry.vars) for name, entry in builder.hosts.items()}
    snapshot.update({("group", name): dict(entry.vars) for name, entry in builder.groups.items()})
    return snapshot


def _register_new_values(before: dict[tuple[str, str], dict[str, Any]], builder: InventoryBuilder) -> None:
    from orchestrator.redact import register_secret_values

    entries = [(("host", n), e.vars) for n, e in builder.hosts.items()]
    entries += [(("group", n), e.vars) for n, e in builder.groups.items()]
    for key, variables in entries:
        old = before.get(key, {})
        for name, value in variables.items():
            if (name not in old or old[name] is not value) and not _is_addressing(name):
                register_secret_values(value)


def _is_addressing(name: str) -> bool:
    """Where and how to reach a PC: shown in every message about the PC, so not masked even when vaulted."""
    from orchestrator.redact import is_secret_name

    addressing = name in ("ansible_host", "ansible_port", "ansible_connection") or name.startswith("ansible_winrm_")
    return addressing and not is_secret_name(name)


def _parse_file(path: Path, text: str, builder: InventoryBuilder) -> None:
    filename = str(path)
    if text.startswith("#!") and os.access(path, os.X_OK):
        raise InputError(
            "dynamic inventory scripts are not supported", Location(filename, 1, 1), hint="use a YAML or INI file"
        )
    builder.sources.append(str(path.resolve()))
    source_name = str(path.resolve())
    suffix = path.suffix.lower()
    if suffix in YAML_EXTENSIONS:
        parse_yaml_inventory(load_yaml_text(text, filename), filename, builder)
        _fix_sources(builder, filename, source_name)
        return
    if suffix in INI_EXTENSIONS or _looks_ini(text):
        parse_ini_inventory(text, filename, builder)
        _fix_sources(builder, filename, source_name)
        return
    first = _first_line(text)
    if first is not None and _YAML_START.match(first):
        parse_yaml_inventory(load_yaml_text(text, filename), filename, builder)
    else:
        try:
            data = load_yaml_text(text, filename)
        except InputError:
            data = None
        if isinstance(data, dict):
            parse_yaml_inventory(data, filename, builder)
        else:
            parse_ini_inventory(text, filename, builder)
    _fix_sources(builder, filename, source_name)


def _fix_sources(builder: InventoryBuilder, filename: str, absolute: str) -> None:
    """Hosts remember the absolute path of the file that first listed them (``inventory_file``)."""
    for host in builder.hosts.values():
        if host.source == filename:
            host.source = absolute


def _first_line(text: str) -> str | None:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", ";", "---")):
            return stripped
    return None


def _looks_ini(text: str) -> bool:
    first = _first_line(text)
    return first is not None and bool(_INI_SECTION.match(first))


def _load_host_list(source: str, builder: InventoryBuilder) -> None:
    """``-i 'pc01,pc02,'``: a comma-separated list of hosts (Ansible's host_list source)."""
    for raw in source.split(","):
        item = raw.strip()
        if not item:
            continue
        base, port = split_port(item)
        loc = Location(f"-i {source!r}")
        try:
            names = expand(base)
        except RangeError as exc:
            raise InputError(f"bad host range: {exc}", loc) from None
        for host in names:
            builder.add_host(host, loc, "", "ungrouped", port)
