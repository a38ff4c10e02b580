"""Chemical perturbations: molecule features and the drugs synthetic screens are made of."""
