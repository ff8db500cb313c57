"""Modules: one small class per task type, registered by name (``modules.base.REGISTRY``)."""
