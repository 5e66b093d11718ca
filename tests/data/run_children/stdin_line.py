"""Reads one line from stdin and prints it back (a prompt answered by the user)."""
import sys

print("answer?", flush=True)
print("got", repr(sys.stdin.readline()), flush=True)
