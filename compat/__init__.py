"""kto-compat: measure which TRL x transformers pairs train KTO, and adapt scripts to them.

Importing this package must stay cheap and free of ML imports: the host side
(``compat.harness``) runs where no trl/transformers/torch is installed.
"""

__version__ = "0.1.0"
