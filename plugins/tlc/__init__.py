"""Test-time Local Converter (TLC): reusable local replacements for global operations.

Chu et al., "Improving Image Restoration by Revisiting Global Information Aggregation" (ECCV 2022,
arXiv 2112.04491). Models trained on crops but run on whole images see different statistics in
their global operations (global average pooling, instance-norm statistics, transposed attention).
TLC makes those operations local at test time, over windows of the size the layer saw in training
(times 1.5 by default), with no retraining and no new parameters.

Modules:
    windows: kernel-size derivation (a shapes-only calibration pass) and the static window grid.
    ops: the local operators (local mean with replicate border, local variance, overlapping
        windowed application of a function, e.g. transposed attention).
    convert: the generic converter a method's recipe calls: find the global modules, derive their
        kernels at the training size, swap in local versions, and record what was done.

This package is a library for method plugins, not a method: it registers nothing.
"""
