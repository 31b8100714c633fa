"""guided-diffusion ADM UNet backbone plugin."""
