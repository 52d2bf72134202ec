"""``edgeir report``: what a person looks at (:mod:`.build`) and its figures (:mod:`.plots`)."""
