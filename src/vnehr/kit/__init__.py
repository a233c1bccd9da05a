"""Domain-free building blocks: settings, database, errors, messages, logging, paging, time.

Imports no context. Contexts import its modules directly (``vnehr.kit.db``...).
"""
