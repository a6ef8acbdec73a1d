"""The ``circuitlab`` command line: a thin shell over library functions."""
