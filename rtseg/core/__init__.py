"""The bottom floor: errors, paths and caches, constants, the machine record, model metadata. Imports
nothing else from rtseg, so every other part can depend on it."""
