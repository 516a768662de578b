"""Test support: synthetic media that proves its origin, and checkers for received media."""
