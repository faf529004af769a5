"""A local AWS endpoint for trying and testing cdpoc: moto's server plus the operations moto lacks."""
