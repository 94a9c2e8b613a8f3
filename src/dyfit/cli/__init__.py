"""The command-line interface: a thin layer that only parses options and calls the library."""
