"""``python -m ot_core``: the same command line as ``ot``."""

from ot_core.cli import main

if __name__ == "__main__":
    main(prog_name="ot")
