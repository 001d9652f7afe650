"""`python -m batcher` runs the chert-batch command line."""

from batcher.cli import main

main(prog_name="chert-batch")
