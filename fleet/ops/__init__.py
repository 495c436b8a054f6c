"""Operations against the live servers: inventory, secrets, backups, restores, verify and status.
"""
