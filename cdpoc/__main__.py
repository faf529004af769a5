"""`python -m cdpoc` runs the command-line program."""

from cdpoc.cli import main

main()
