"""kmsfleet: activate and audit volume licences across whole classrooms over WinRM."""

__version__ = "0.1.0"
