"""lora-doctor: get LoRA training with kohya-ss sd-scripts to work on the first try.

The public surface for plugin authors is this package's root (docs/plugins.md uses nothing else):

    from lora_doctor import hookimpl, Check, Finding, Severity, Context
    from lora_doctor import Diagnosis, Failure, PostMortem, run_bounded, testing

Names are resolved lazily (module ``__getattr__``), so ``lora-doctor --version`` imports none of
them. Inside lora-doctor, import from the defining module instead.
"""

__version__ = "0.1.0"

# public name -> (module, attribute); attribute None means the module itself
PUBLIC = {
    "hookimpl": ("lora_doctor.hookspecs", "hookimpl"),
    "Check": ("lora_doctor.model", "Check"),
    "Finding": ("lora_doctor.model", "Finding"),
    "Severity": ("lora_doctor.model", "Severity"),
    "Failure": ("lora_doctor.model", "Failure"),
    "Diagnosis": ("lora_doctor.model", "Diagnosis"),
    "Context": ("lora_doctor.context", "Context"),
    "PostMortem": ("lora_doctor.diagnose.match", "PostMortem"),
    "run_bounded": ("lora_doctor.subproc", "run_bounded"),
    "Outcome": ("lora_doctor.subproc", "Outcome"),
    "testing": ("lora_doctor.testing", None),
}

__all__ = ["__version__", *PUBLIC]


def __getattr__(name):
    try:
        module_name, attribute = PUBLIC[name]
    except KeyError:
        raise AttributeError(f"module 'lora_doctor' has no attribute {name!r}") from None
    import importlib

    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # resolved once
    return value


def __dir__():
    return sorted(set(globals()) | set(PUBLIC))
