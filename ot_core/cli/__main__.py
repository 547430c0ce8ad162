"""``python -m ot_core.cli``: the same command line as ``ot`` (the scheduler runs jobs this
way, with the interpreter it runs under)."""

from ot_core.cli import main

if __name__ == "__main__":
    main(prog_name="ot")
