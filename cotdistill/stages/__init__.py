"""The stages of a run, one module per concern; ``cotdistill.pipeline`` runs them in order."""
