"""Intake: turn an untrusted upload into validated, oriented, metadata-free images and features."""
