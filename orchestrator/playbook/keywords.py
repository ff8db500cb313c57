"""Which keywords plays, blocks and tasks accept, which are accepted but ignored (with a warning), and which
are refused with an explanation."""

from __future__ import annotations

FQCN_PREFIXES = (
    "ansible.builtin.",
    "ansible.legacy.",
    "ansible.windows.",
    "community.windows.",
    "kmsfleet.",
)

#: a task's loop keywords (Ansible's ``with_<lookup>`` that kmsfleet knows, see ``playbook/loops.py``)
LOOP_KEYWORDS = (
    "loop",
    "with_items",
    "with_list",
    "with_dict",
    "with_nested",
    "with_together",
    "with_indexed_items",
    "with_subelements",
    "with_sequence",
)
#: keywords that apply to a block/import and are inherited by every task inside
INHERITED = ("ignore_errors", "ignore_unreachable", "no_log", "check_mode", "diff", "timeout", "any_errors_fatal")

TASK_KEYWORDS = frozenset(
    {
        "name",
        "when",
        "register",
        *LOOP_KEYWORDS,
        "loop_control",
        "retries",
        "until",
        "delay",
        "ignore_errors",
        "ignore_unreachable",
        "changed_when",
        "failed_when",
        "tags",
        "no_log",
        "notify",
        "vars",
        "check_mode",
        "diff",
        "timeout",
        "args",
        "any_errors_fatal",
        "listen",
    }
)

BLOCK_KEYWORDS = frozenset({"block", "rescue", "always", "name", "when", "vars", "tags", *INHERITED})

IMPORT_KEYWORDS = frozenset({"name", "when", "vars", "tags", *INHERITED})

PLAY_KEYWORDS = frozenset(
    {
        "name",
        "hosts",
        "vars",
        "vars_files",
        "gather_facts",
        "serial",
        "strategy",
        "tasks",
        "pre_tasks",
        "post_tasks",
        "handlers",
        "tags",
        "any_errors_fatal",
        "max_fail_percentage",
        "ignore_unreachable",
        "ignore_errors",
        "check_mode",
        "diff",
        "no_log",
        "timeout",
        "wake_on_lan",
    }
)

#: accepted anywhere (play, block, task) and ignored with a warning
IGNORED = {
    "environment": "environment variables are not passed to Windows commands by kmsfleet; it is ignored",
    "become": "kmsfleet runs everything as the connecting account (use an administrator); become is ignored",
    "become_user": "kmsfleet has no privilege escalation; become_user is ignored",
    "become_method": "kmsfleet has no privilege escalation; become_method is ignored",
    "become_flags": "kmsfleet has no privilege escalation; become_flags is ignored",
    "become_exe": "kmsfleet has no privilege escalation; become_exe is ignored",
    "connection": "kmsfleet always connects over WinRM; connection is ignored",
    "collections": "module names are resolved by kmsfleet; collections is ignored",
    "gather_subset": "kmsfleet gathers its own fixed set of facts; gather_subset is ignored",
    "gather_timeout": "gather_timeout is ignored; use timeout",
}

#: connection values that need no warning
WINRM_CONNECTIONS = frozenset(
    {"winrm", "psrp", "ansible.builtin.winrm", "ansible.builtin.psrp", "ansible.windows.psrp"}
)

#: known Ansible keywords kmsfleet refuses, with the reason
REFUSED = {
    "delegate_to": "delegate_to is not supported: every task runs on the host it targets "
    "(kmsfleet has no control-node or third-host execution)",
    "delegate_facts": "delegate_facts is not supported (there is no delegate_to)",
    "local_action": "local_action is not supported: kmsfleet runs tasks on the Windows hosts only",
    "action": "write the module name as the key instead: '- win_command: whoami' rather than 'action:'",
    "run_once": "run_once is not supported: every task runs on every host of the play",
    "async": "async is not supported; use timeout",
    "poll": "poll is not supported (there is no async)",
    "throttle": "throttle is not supported; use --forks or serial",
    "module_defaults": "module_defaults is not supported; use vars",
    "remote_user": "remote_user is not supported; set ansible_user in the inventory",
    "port": "port is not supported here; set ansible_port in the inventory",
    "debugger": "the task debugger is not supported",
    "roles": "roles are not supported; use import_tasks",
    "include_role": "roles are not supported; use import_tasks",
    "import_role": "roles are not supported; use import_tasks",
    "include": "'include' was removed from Ansible; use import_tasks",
    "include_vars": "include_vars is not supported; use vars_files",
    "vars_prompt": "vars_prompt is not supported; pass values with -e",
    "order": "order is not supported; hosts run in inventory order",
    "force_handlers": "force_handlers is not supported",
    "fact_path": "fact_path is not supported",
    "hosts": "'hosts' belongs to a play, not a task",
    "import_playbook": "import_playbook is only allowed at the top level of a playbook",
}

IMPORT_TASKS = ("import_tasks", "include_tasks")
