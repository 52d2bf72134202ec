"""Evaluation: image metrics (:mod:`.metrics`), MAC counts (:mod:`.macs`) and accuracy of a model on
evaluation pairs (:mod:`.accuracy`)."""
