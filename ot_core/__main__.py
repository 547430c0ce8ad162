"""``python -m ot_core``: the same command line as ``ot``, leaving the ordinary way (so a
profiler or debugger that writes at exit, ``python -m cProfile -m ot_core``, still does)."""

from ot_core.cli import main

if __name__ == "__main__":
    main(prog_name="ot")
