"""Results: frozen models (a leaf), the history store and the report writers."""
