"""Built-in operators plugin."""
