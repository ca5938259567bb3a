"""The pull request's review: the report against the base branch, its charts, the merge gate and
the comment poster.

``comment`` must stay standard-library only: the job that holds the write token runs it without
installing anything (so this package's ``__init__`` imports nothing).
"""
