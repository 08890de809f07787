"""Colour-hint, draft-artifact and line-augmentation synthesis on batch tensors.

Every scheme is two pure functions: `draw_*` picks one sample's parameters from a seeded NumPy
generator and returns them as a JSON-ready dict (recorded in the shard), and `apply_*` turns a
batch of images plus one parameter dict per sample into the output, on the images' device. Re-running
`apply_*` on recorded parameters reproduces the sample. Registries: `synth.hints.HINTS`,
`synth.artifacts.ARTIFACTS`; line augmentations live in `synth.lines`.
"""
