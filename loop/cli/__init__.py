"""The ``starloop`` command: one parser (``main``), one module per command."""
