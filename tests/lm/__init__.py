"""Tests of the language-model layer; :mod:`contract` holds the checks every backend must pass."""
