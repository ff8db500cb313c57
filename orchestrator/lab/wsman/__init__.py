"""The lab's WS-Management front end: SOAP parsing and responses, faults, WinRS, WMI over WS-Man, the
service configuration resource, authentication helpers and message encryption. The HTTP listeners live in
``orchestrator.lab.server``; the simulated PC behind it implements ``orchestrator.lab.provider.SimulatedHost``."""
