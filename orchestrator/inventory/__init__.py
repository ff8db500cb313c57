"""Ansible-compatible inventories: YAML and INI files, directories, ``group_vars/``/``host_vars/``, host ranges,
variable precedence and host patterns.

    inventory = load_inventory(["inventories/school.yml"])
    inventory.select("room101:!pc05")      # ['pc01', 'pc02', …]
    inventory.host_vars("pc01")            # merged vars + inventory_hostname, group_names, groups, …
"""

from orchestrator.inventory.loader import load_inventory
from orchestrator.inventory.model import Group, Host, Inventory
from orchestrator.inventory.patterns import Selection

__all__ = ["Group", "Host", "Inventory", "Selection", "load_inventory"]
