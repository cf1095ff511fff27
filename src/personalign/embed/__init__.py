"""personalign."""
