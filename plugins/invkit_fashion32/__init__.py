"""Embedded fashion32 model plugin."""
