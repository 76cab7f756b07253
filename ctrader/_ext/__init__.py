"""Compiled Cython extensions (built from ext/ by setup.py)."""
