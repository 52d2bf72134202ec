"""Weights: building a method's model with its weights (:mod:`.build`), reading checkpoints safely
(:mod:`.checkpoint`, :mod:`.checkpoint_index`) and the weights plugins ship (:mod:`.shipped`)."""
