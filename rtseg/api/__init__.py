"""The public Python API (`rtseg.Segmenter`, `rtseg.stream`, `rtseg.models`): the top floor, above the CLI's
building blocks; it may import everything below it and nothing imports it but the CLI and users."""
