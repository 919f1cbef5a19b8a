"""Host side of kto-compat: never imports trl, transformers or torch."""
