from . import fields  # noqa: F401
