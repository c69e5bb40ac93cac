"""Hostile input and tenancy: uploads that must be refused, routes that must not leak."""
