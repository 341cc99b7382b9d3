"""The sandbox federation: a local FLAME Hub (``hub/``) and its hospital nodes (``node/``).

``flame_lab.sandbox.daemon`` starts, stops and reports on a sandbox living in one home folder.
"""
