"""Thin command-line front ends. Each module defines ``add_arguments(parser)`` and
``run(args) -> int`` and calls library functions that scripts and notebooks call too."""
