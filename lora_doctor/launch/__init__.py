"""The training command: parse it, edit it, read it back from a log, the options its script accepts, accelerate's config."""

LAUNCHERS = ("accelerate", "python", "python3", "py", "torchrun")  # first words of a training command
