"""editgate: one HTTP API in front of many AI image-edit providers."""
