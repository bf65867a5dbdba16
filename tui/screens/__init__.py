"""Screens pushed over the main view: help and folio inspection."""
