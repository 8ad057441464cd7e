"""Imports every model module so that each registers itself. Add new ones here."""

# (model modules are added as they land)
