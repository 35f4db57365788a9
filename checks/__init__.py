"""`make check`: the reliability proof.

Starts Ballot in its production shape on this machine (gunicorn, PostgreSQL, Redis,
Celery workers), attacks it, breaks its parts, loads it, and prints one table of what
was tried, what held and what was lost (``python -m checks``; the JSON report lands in
``var/check/report.json``).

Each check is one module with ``run(ctx: Context) -> list[Figure]`` (see ``core``):
``access``, ``injection``, ``outbound``, ``bad_input``, ``faults``, ``load``,
``deployment``. The orchestrator (``__main__``) owns the order and the stack
(``stack``); ``world`` seeds the principals and rows every check aims at.
"""
