"""Built-in method plugins (``edgeir.plugins``): one package per method, each exposing one ``SPEC``.

A plugin package's ``__init__`` stays light (no PyTorch import) so that ``edgeir list`` is fast;
the model code is imported when a model is built.
"""
