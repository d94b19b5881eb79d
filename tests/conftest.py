# Fixtures come from the shared.testing.plugin (pyproject addopts); service test folders add their own.
