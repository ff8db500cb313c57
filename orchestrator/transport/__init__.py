"""Transport: the only package that speaks WinRM (pypsrp). Everything above sees ``WinRMConnection``."""
