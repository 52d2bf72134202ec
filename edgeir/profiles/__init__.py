"""Profiles: latency and memory records (:mod:`.profile`), the device they were measured on (:mod:`.device`),
measuring on this host (:mod:`.measure`), importing device measurements (:mod:`.importing`) and per-operator
rows (:mod:`.operators`)."""
