"""The export pipeline: the named stages from a method's eager model to a sealed bundle, and the checks of a recipe
against the program it exports."""
