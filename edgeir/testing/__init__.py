"""The plugin conformance kit: the checks a method plugin must pass, shipped with edgeir.

A third-party plugin runs them in its own CI, with either front-end::

    edgeir check-plugin NAME                        # no pytest needed; exit 0 when every check passes
    pytest --pyargs edgeir.testing --method NAME    # one pytest test per check

The checks themselves are plain functions in :mod:`edgeir.testing.conformance`.
"""
