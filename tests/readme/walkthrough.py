"""Runs the README's grpcurl walk-through against the real binary, so the README
cannot drift from what the gateway does.

Usage: walkthrough.py PATH_TO_BINARY

* The gateway starts in sandbox mode on a free port, with the environment the README
  tells a newcomer to start it with (the `#   VAR=... cargo run -- --sandbox` line).
* Every command of the section's ```sh block must succeed, and every `#=> text` line
  below a command must appear in that command's output.
* Every `$ command` of the following block must print exactly the lines below it.
"""

import os
import re
import shlex
import socket
import subprocess
import sys
import time

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")
ADDRESS_IN_README = "localhost:50051"


def section(text: str) -> str:
    start = text.index("## Calling it")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def blocks(text: str):
    """The fenced blocks of a section: (info string, body)."""
    return re.findall(r"```(\w*)\n(.*?)```", text, re.S)


def steps(body: str):
    """(command, expected substrings) for each command of a shell block."""
    out = []
    pending = ""
    for line in body.splitlines():
        if pending:
            pending += " " + line.strip()
        elif line.startswith("#=> "):
            out[-1][1].append(line[4:])
            continue
        elif line.startswith("#") or not line.strip():
            continue
        else:
            pending = line.strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        out.append((pending, []))
        pending = ""
    return out


def start_env(body: str) -> dict:
    """The settings the README starts the gateway with, from its `cargo run` comment."""
    env = {}
    for line in body.splitlines():
        if line.startswith("#   ") and "cargo run -- --sandbox" in line:
            for word in shlex.split(line[1:].split("cargo run")[0]):
                name, _, value = word.partition("=")
                env[name] = value
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    binary = sys.argv[1]
    text = section(open(README, encoding="utf-8").read())
    found = blocks(text)
    shell = [b for kind, b in found if kind == "sh"]
    transcripts = [b for kind, b in found if kind == "" and b.lstrip().startswith("$ ")]
    assert len(shell) == 1 and len(transcripts) == 1, "one sh block and one transcript"
    env = start_env(shell[0])
    assert env, "the README says how to start the gateway for local verification"
    port = free_port()
    address = f"127.0.0.1:{port}"
    gateway = subprocess.Popen(
        [binary, "--sandbox", "--listen", address],
        env={"PATH": os.environ.get("PATH", ""), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert gateway.poll() is None, "the gateway exited"
                assert time.time() < deadline, "the gateway did not listen"
                time.sleep(0.05)
        ran = 0
        for command, expected in steps(shell[0]):
            argv = shlex.split(command.replace(ADDRESS_IN_README, address))
            assert argv[0] == "grpcurl", command
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"README command failed:\n{command}\n{output}"
            for want in expected:
                assert want in output, f"README promises {want!r} from:\n{command}\n{output}"
            ran += 1
        for chunk in transcripts[0].split("\n$ ")[0:]:
            chunk = chunk.strip()
            if chunk.startswith("$ "):
                chunk = chunk[2:]
            command, _, expected = chunk.partition("\n")
            argv = shlex.split(command.replace(ADDRESS_IN_README, address))
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            got = [l.rstrip() for l in (done.stdout + done.stderr).strip().splitlines()]
            want = [l.rstrip() for l in expected.strip().splitlines()]
            assert got == want, f"README transcript drifted for:\n{command}\nREADME:\n" + "\n".join(
                want
            ) + "\nbinary:\n" + "\n".join(got)
            ran += 1
        print(f"README walk-through: {ran} commands ok")
    finally:
        gateway.kill()
        gateway.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
