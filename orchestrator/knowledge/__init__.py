"""What kmsfleet knows: the error catalogue (code -> meaning, cause, fix in en and zh-TW), the published KMS
client keys (GVLKs) and the run-output messages. A leaf package: stdlib, pyyaml, pydantic and
``orchestrator.errors`` only; anything in kmsfleet (and the lab) may import it.

Modules: ``catalogue`` (parse_code, lookup, diagnose, all_entries, seed_codes), ``gvlk`` (windows_gvlk,
office_gvlk), ``i18n`` (t, normalise_lang).
"""
