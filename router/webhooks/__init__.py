"""Signed, durable webhooks on an edit's terminal states.

```
 terminal transaction ── enqueue() ──► webhook_deliveries (outbox rows, same commit)
                                            │ claim (lease: conditional UPDATE)
 DeliveryWorker (one task per process) ◄────┘
   guard.check (DNS -> every address allowed?) -> sign (Standard Webhooks) -> POST to the checked IP
   -> record the attempt -> delivered | pending (backoff + full jitter) | failed (24 h window closed)
```

``guard`` decides which addresses may be called, ``signing`` makes the headers, ``outbox`` holds every
query, ``delivery`` runs the worker, ``intake`` checks a request's ``webhook_url``.
"""

from router.webhooks.outbox import enqueue

__all__ = ["enqueue"]
