"""Readers of the supported file formats (one module each) and the parsing helpers they share."""
