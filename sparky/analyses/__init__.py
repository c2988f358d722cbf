"""One module per output stream; each exposes a pure `build()`."""
