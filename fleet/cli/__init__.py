"""`python -m fleet <verb>`: the one front door for people and CI, one module per verb group.
"""
