"""Per-project webhooks: signed events (Standard Webhooks), retried with backoff, logged per delivery.

Events come from the in-process bus (``annotation.events``); ``curation.apps``
subscribes ``services.event_receive`` to it. Deliveries leave only through
``curation.outbound``, the one outbound client with the address checks.
"""
