"""The adopter's part of the template: the data contract and the source's cleaning rules.

The only Python a team edits when it brings its own table (see the README, "Bring your own data").
It imports pandas and pandera only, never the template machinery in ``mlci``.
"""
