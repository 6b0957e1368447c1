"""Panels and menus of the Geo4D add-on."""
