"""Reports: one writer that knows every format (publish.write), renderers that each know one
(markdown, html, junit, plot), the grid they share (grid) and their words (vocab). This file
stays empty so a renderer's import never runs the writer (no import cycles)."""
