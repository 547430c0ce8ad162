"""Order-tracking workbench: the library behind the CLI, the job notebooks and the explorers."""

__version__ = "0.1.0"
