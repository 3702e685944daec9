"""mobexport.exporter — the core: model registry, specs, layers, model families, passes, weights.

This layer imports only torch and numpy (Pillow lazily, for image preprocessing). Every other
layer builds on it; it imports none of them (enforced by import-linter).
"""
