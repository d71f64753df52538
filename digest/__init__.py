"""digest: news feeds -> a daily press-review email, one edition per subscriber."""

__version__ = "0.1.0"  # the one place it is written: pyproject.toml reads it (tool.hatch.version)
