"""The review queue: entries fed by curation jobs, agreement, gold items and the explorer, and their adjudication."""
