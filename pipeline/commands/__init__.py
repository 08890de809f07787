"""The `pipe` commands: one module per command or command group, registered on `pipeline.commands.app.app`.

`pipeline.cli` imports every module here so that its command registers, in the order `pipe --help` lists them.
"""
