"""Cleaning: normalised comparison keys (for duplicate detection) and value transforms (for
normalisation policies). Pure functions over single values; no store, no SQL.

``keys`` builds the keys ``duplicate_of`` groups by (email, E.164 phone, company, person
name); ``phones`` reads phone numbers with the ``phonenumbers`` library; ``legal_forms`` is the
data list of company legal-form suffixes; ``transforms`` rewrites values for ``update`` policies.
"""
