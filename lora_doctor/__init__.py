"""lora-doctor: get LoRA training with kohya-ss sd-scripts to work on the first try."""

__version__ = "0.1.0"


def __getattr__(name):
    # `hookimpl` is resolved lazily so `lora-doctor --version` does not import pluggy.
    if name == "hookimpl":
        from lora_doctor.hookspecs import hookimpl

        return hookimpl
    raise AttributeError(name)
