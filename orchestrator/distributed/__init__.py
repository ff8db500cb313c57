"""Scale-out: per-site Celery workers (issue "Scale-out")."""
