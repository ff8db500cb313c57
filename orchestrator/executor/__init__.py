"""The executor: runs plays over hosts in parallel; each host runs its own pipeline of tasks."""
