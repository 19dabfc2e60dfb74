"""Converters that bring pretrained parts from outside into the layouts the toolkit loads (``sak convert``).

* :mod:`.clap`: an original LAION-CLAP checkpoint (``630k-audioset-best.pt``) to the transformers ``ClapModel``
  folder that ``text.pretrained:`` and ``sak evaluate --clap`` take, without the ``laion_clap`` package.
"""

from .clap import (
    LAION_FEATURES,
    clap_config_from_laion,
    convert_clap_checkpoint,
    laion_to_transformers,
    load_laion_state_dict,
)

__all__ = [
    "LAION_FEATURES",
    "clap_config_from_laion",
    "convert_clap_checkpoint",
    "laion_to_transformers",
    "load_laion_state_dict",
]
