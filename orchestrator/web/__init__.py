"""``kmsfleet serve``: a read-only fleet web page over the run history (see docs/serve.md)."""
