"""The adoption phase (`make adopt`): a new table in, a working project out.

``infer`` reads the table and infers its contract and task, ``render`` writes the adopter's
package, ``configure`` resets params.yaml, dvc.yaml and the plots, and ``run`` ties them together
with every check made before anything is written.
"""
