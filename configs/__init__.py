"""The shipped experiment configs (YAML), importable as ``cotdistill.configs`` so an installed package has them."""
