"""Computation for the ASR/SER transfer recipe; the shell scripts in steps/, local/ and utils/ call it."""
