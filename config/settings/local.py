"""Local development and tests: the zero-setup default (no variable needs to be set)."""

from config.env import strict_bool, strict_str

from .base import *  # noqa: F403 -- Django settings layering: local = base + overrides

DEBUG = strict_bool("DJANGO_DEBUG", True)
# A fixed key is fine for a local machine; production.py has no default.
SECRET_KEY = strict_str("DJANGO_SECRET_KEY", "local-development-only-not-a-secret")
