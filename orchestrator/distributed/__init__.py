"""Scale-out: per-site Celery workers with Redis as broker and result backend (docs/distributed.md).

- ``celery_app``: the Celery app factory (JSON only, late acknowledgement, one queue per site) and Redis key names.
- ``message``: what a batch message holds (the compiled plan, the hosts' non-secret variables, run options) and
  how secrets are kept out of it.
- ``worker``: the task that runs one batch through the ordinary engine (``executor.engine.ThreadEngine``) and
  streams each event to Redis as it happens; the lease that tells the controller the batch is still alive.
- ``controller``: ``DistributedEngine`` — split by the host variable ``site``, dispatch batches, read the stream
  into the usual reporters (history database, terminal), re-queue batches of lost workers, give up on sites
  without a worker.
"""
