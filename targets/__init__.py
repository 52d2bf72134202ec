"""Export targets (``edgeir.targets``): one module per format, each exposing one ``TARGET``."""
