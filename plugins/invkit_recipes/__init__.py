"""Built-in recipe presets plugin."""
