"""Local stand-ins for the systems clm-sync talks to, serving a seeded synthetic business.

:mod:`sandbox.synthetic` makes the business (true persons and a messy CSV export of them);
the stand-in servers and ``clm-sync demo`` serve and sync it.
"""
