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
        "roles",
        "remote_user",
        "user",
        "vars_prompt",
    }
)

#: keys of a ``roles:`` entry that are keywords, not role parameters
ROLE_ENTRY_KEYWORDS = frozenset({"role", "name", "when", "tags", "vars", *INHERITED})
#: keys of ``import_role``/``include_role`` themselves
ROLE_IMPORT_ARGS = frozenset(
    {
        "name",
        "tasks_from",
        "defaults_from",
        "vars_from",
        "handlers_from",
        "public",
        "allow_duplicates",
        "rolespec_validate",
    }
)
ROLE_IMPORTS = ("import_role", "include_role")

#: accepted anywhere (play, block, task) and ignored with a warning
IGNORED = {
    "become": "become is refused when true (see BECOME_REFUSED)",
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
    "environment": "kmsfleet runs each command in its own WinRS shell with the account's environment; "
    "set variables inside the command instead (win_shell: $env:NAME = 'x'; …)",
    "port": "port is not supported here; set ansible_port in the inventory",
    "debugger": "the task debugger is not supported",
    "include": "'include' was removed from Ansible; use import_tasks",
    "order": "order is not supported; hosts run in inventory order",
    "force_handlers": "force_handlers is not supported",
    "fact_path": "fact_path is not supported",
    "hosts": "'hosts' belongs to a play, not a task",
    "import_playbook": "import_playbook is only allowed at the top level of a playbook",
}

IMPORT_TASKS = ("import_tasks", "include_tasks")

#: ``become: true`` is refused (``become: false`` and the other become_* keys are ignored with a warning)
BECOME_REFUSED = (
    "become is not supported: WinRM already signs in as the account given, which must be an administrator "
    "for licensing; set ansible_user (and ansible_password) to that account instead of becoming it"
)

#: Ansible's Windows modules (ansible.windows, community.windows, and the builtins that work on Windows), to say
#: "an Ansible module kmsfleet does not support" rather than suggest a different module with a similar name
KNOWN_ANSIBLE_MODULES = frozenset(
    {
        "win_acl", "win_acl_inheritance", "win_auto_logon", "win_certificate_info", "win_certificate_store",
        "win_chocolatey", "win_chocolatey_config", "win_chocolatey_facts", "win_chocolatey_feature",
        "win_chocolatey_source", "win_command", "win_computer_description", "win_copy", "win_credential",
        "win_data_deduplication", "win_defrag", "win_dhcp_lease", "win_disk_facts", "win_disk_image",
        "win_dns_client", "win_dns_record", "win_dns_zone", "win_domain", "win_domain_computer",
        "win_domain_controller", "win_domain_group", "win_domain_group_membership", "win_domain_membership",
        "win_domain_object_info", "win_domain_user", "win_dotnet_ngen", "win_dsc", "win_environment",
        "win_eventlog", "win_eventlog_entry", "win_feature", "win_feature_info", "win_file", "win_file_compression",
        "win_file_version", "win_find", "win_firewall", "win_firewall_rule", "win_format", "win_get_url",
        "win_group", "win_group_membership", "win_hosts", "win_hotfix", "win_http_proxy", "win_iis_virtualdirectory",
        "win_iis_webapplication", "win_iis_webapppool", "win_iis_webbinding", "win_iis_website", "win_inet_proxy",
        "win_initialize_disk", "win_lineinfile", "win_listen_ports_facts", "win_mapped_drive", "win_msg",
        "win_netbios", "win_nssm", "win_optional_feature", "win_owner", "win_package", "win_pagefile",
        "win_partition", "win_path", "win_pester", "win_ping", "win_power_plan", "win_powershell",
        "win_product_facts", "win_psexec", "win_psmodule", "win_psmodule_info", "win_psrepository",
        "win_psrepository_copy", "win_psrepository_info", "win_psscript", "win_psscript_info",
        "win_pssession_configuration", "win_rabbitmq_plugin", "win_rds_cap", "win_rds_rap", "win_rds_settings",
        "win_reboot", "win_reg_stat", "win_regedit", "win_region", "win_regmerge", "win_robocopy", "win_route",
        "win_say", "win_scheduled_task", "win_scheduled_task_stat", "win_scoop", "win_scoop_bucket",
        "win_security_policy", "win_service", "win_service_info", "win_share", "win_shell", "win_shortcut",
        "win_snmp", "win_stat", "win_tempfile", "win_template", "win_timezone", "win_toast", "win_unzip",
        "win_updates", "win_uri", "win_user", "win_user_profile", "win_user_right", "win_wait_for",
        "win_wait_for_process", "win_wakeonlan", "win_webpicmd", "win_whoami", "win_xml", "async_status",
        "add_host", "assert", "debug", "fail", "fetch", "group_by", "include_vars", "meta", "pause", "raw",
        "script", "set_fact", "set_stats", "setup", "slurp", "wait_for_connection", "gather_facts",
    }
)  # fmt: skip
