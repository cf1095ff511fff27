"""personalign: personalize LLMs to individual users from a few examples."""

__version__ = "0.1.0"
