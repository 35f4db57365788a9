"""LM judges: configurations and versions, the backends that ask them, the verdicts they give."""
