"""One module per job kind; :mod:`curation.jobs.registry` collects their ``SPEC``."""
