"""Offline placement simulations (reshuffle on membership change, online resharding load).

Scripts run from the repository root (`python simulations/<name>.py --out DIR`) and import the
real router from `miroir.core.placement`. They are not part of the installed package and nothing
in `src/` may import them.
"""
