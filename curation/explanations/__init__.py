"""SAE explanations of a preference dataset, on the application side.

The maths is :mod:`models_gpu.sae` and :mod:`models_gpu.explain`; this package
turns stored feedback into their inputs (:mod:`~curation.explanations.inputs`),
stores what they return (:mod:`~curation.explanations.services`), reads it back
for the API and the workspace page (:mod:`~curation.explanations.selectors`),
lets a judge name features (:mod:`~curation.explanations.naming`) and acts on a
feature: its pairs go to the review queue or out of an export.
"""
