"""The default settings, shipped inside the package as cdpoc.defaults (see pyproject.toml)."""
