"""Gates: accuracy/latency/integrity rules over bundles read from TOML (:mod:`.rules`) and their renderings
for terminals, JUnit and Markdown (:mod:`.render`)."""
