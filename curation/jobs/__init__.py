"""Job kinds: one module per kind under :mod:`curation.jobs.kinds`, collected by the registry.

A kind module declares its typed parameters (:mod:`curation.jobs.params`), its queue,
whether it fans out into shards, the rows it writes and its run function, in one
:class:`~curation.jobs.base.JobKindSpec`. :mod:`curation.jobs.registry` lists every
kind; the lifecycle (:mod:`curation.services.jobs`) knows kinds only through it.
"""
