"""The error a training or inference setup raises when the user can fix it (a bad option, missing
shards or weights): `pipe` prints its message as one line."""


class TrainingError(ValueError):
    """A run that cannot start as asked; the message says which option or file and what to do."""
