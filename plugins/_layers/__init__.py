"""Building blocks the method plugins share, each written once (``edgeir.plugins._layers``).

Not a method: it registers nothing. The package ``__init__`` imports nothing, so a plugin's light
``__init__`` may use :mod:`.spec` without pulling in PyTorch.

Modules:
    norm: :class:`~.norm.ChannelLayerNorm` (LayerNorm over the channels of an NCHW map; with bias,
        or Restormer's BiasFree form) and :class:`~.norm.BodyLayerNorm` (the same under ``body``,
        the key layout of Restormer-family checkpoints).
    attention: the transposed (channel) attention core :func:`~.attention.channel_attention`, its
        windowed TLC form, and Restormer's MDTA module :class:`~.attention.TransposedAttention`.
    feedforward: :class:`~.feedforward.GatedFeedForward` (Restormer's gated-dconv FFN, GDFN).
    checkpoint: unwrapping checkpoint files (one documented wrapper precedence), stripping
        DataParallel/Lightning prefixes, and :func:`~.checkpoint.basicsr_state_dict`.
    spec: what the plugins' ``__init__`` modules share: :class:`~.spec.Lazy` (import on first
        call), the shipped-weights table, and the single-image program and tile of a recipe.

Module attribute names here are checkpoint keys: they must not change.
"""
