"""Ballot's numerical core: embeddings, reward models, FiFA scores, kNN entropy.

Pure Python + numpy + torch. This package never imports Django, so it can be
tested alone, used from a notebook and run on a GPU worker with no web code.
"""
