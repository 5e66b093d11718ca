"""A rich-formatted log record and traceback, as sd-scripts prints them."""
import logging

from rich.logging import RichHandler
from rich.traceback import install

install()
logging.basicConfig(level=logging.INFO, handlers=[RichHandler(show_time=False)], format="%(message)s", datefmt="[%X]")
logging.getLogger("train").info("load Diffusers pretrained models: /some/rather/long/path/to/a/model/folder/that/would/fold")


def load(path):
    raise FileNotFoundError(f"No such file or directory: {path!r}")


load("/data/model.safetensors")
