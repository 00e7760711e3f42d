"""The engine: trains populations of specs that share an architecture."""
