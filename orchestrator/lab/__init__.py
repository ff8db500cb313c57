"""The simulated classroom: Windows PCs on loopback addresses speaking WS-Management, a lab KMS host, Wake-on-LAN
and a control API (DESIGN §6). Imports only leaf modules; the engine never imports the lab."""
