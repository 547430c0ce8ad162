"""Checks of the data: daily monitoring, comparison with the source, checksums, conservation."""
