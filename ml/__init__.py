"""Pure machine learning for Capas: spec, backends, datasets, training, export and serving."""
