"""A synthetic electricity distribution company with known ground truth (docs/generator.md)."""
