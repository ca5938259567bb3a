"""Serving the approved model: the BentoML service, the fast predictor, the prediction log, the
model store (BentoML registration) and packaging into a bento.
"""
