"""Container engines of the observer."""
