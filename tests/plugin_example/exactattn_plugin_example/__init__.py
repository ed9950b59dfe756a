"""An example exactattn plugin: a user's own result with two checkable claims."""
