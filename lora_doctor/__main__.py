"""`python -m lora_doctor`: the same as the `lora-doctor` command."""
from lora_doctor.cli import main

raise SystemExit(main())
