"""Closing the loop: drift on logged predictions or new data, model age, the scheduled check that
opens one issue, and retraining as a pull request.
"""
