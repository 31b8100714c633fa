"""ddim-repo DDPM UNet backbone plugin."""
