"""Simulators of systems vnehr cannot reach here (VNeID identity provider, BHXH portal).

They speak the real protocol shapes and support fault injection. Product code never imports
this package (an import-linter contract checks it); only the CLI and tests start them.
"""
