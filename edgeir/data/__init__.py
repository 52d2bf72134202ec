"""Data: image files in and out (:mod:`.imageio`), built-in photos (:mod:`.photos`), the one set of task
degradations (:mod:`.degradations`) and training/evaluation datasets (:mod:`.datasets`)."""
