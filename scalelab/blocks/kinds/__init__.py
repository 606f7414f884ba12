"""The block kinds a spec names, one module each, named by its kind (``kind: conv`` is
``kinds/conv.py``). ``scalelab.blocks.registry`` reads the list of kinds from this folder and imports
a kind's module the first time a spec names it."""
