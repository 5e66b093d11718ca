"""`python -m lora_doctor`: the same as the `lora-doctor` command."""
from .cli import main

raise SystemExit(main())
