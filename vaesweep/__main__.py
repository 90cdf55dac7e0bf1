"""``python -m vaesweep``: the same command-line interface as the ``vaesweep`` script."""

from vaesweep.cli import main

if __name__ == "__main__":
    main()
