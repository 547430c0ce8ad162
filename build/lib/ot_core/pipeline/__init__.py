"""The pipeline stages: extract, land, merge, lifecycle (archive), periods, the cycle."""
