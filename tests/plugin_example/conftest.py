"""The example plugin is a package of its own (installed with pip), not a test module."""

collect_ignore = ["exactattn_plugin_example"]
