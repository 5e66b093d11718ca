"""`lora-doctor run`'s child process: the runner and what happens to each chunk of its output."""
