#!/usr/bin/env python3
"""A stand-in `ollama` (no Ollama server here): records its arguments in $FAKE_OLLAMA_LOG and checks what
`create` is given the way Ollama does (the Modelfile parses, FROM names a GGUF file beside it).

    create NAME -f FILE   -> exit 0 when FILE is a Modelfile whose FROM is a GGUF file; else exit 1
    run NAME PROMPT       -> prints $FAKE_OLLAMA_ANSWER for a created NAME; else exit 1
$FAKE_OLLAMA_FAIL=connect makes every call fail as Ollama does without its server.
"""

import json
import os
import sys
from pathlib import Path

log = Path(os.environ["FAKE_OLLAMA_LOG"])
argv = sys.argv[1:]
with log.open("a") as f:
    f.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")
if os.environ.get("FAKE_OLLAMA_FAIL") == "connect":
    print("Error: could not connect to ollama app, is it running?", file=sys.stderr)
    sys.exit(1)
created = log.with_suffix(".created")
if argv[:1] == ["create"] and len(argv) == 4 and argv[2] == "-f":
    modelfile = Path(argv[3])
    lines = modelfile.read_text().splitlines()
    source = Path(lines[0].removeprefix("FROM ").strip())
    if not lines[0].startswith("FROM ") or not source.is_file() or source.read_bytes()[:4] != b"GGUF":
        print(f"Error: invalid model reference: {lines[0]}", file=sys.stderr)
        sys.exit(1)
    if not any(line.startswith('TEMPLATE """') for line in lines):
        print("Error: no TEMPLATE", file=sys.stderr)
        sys.exit(1)
    created.write_text(argv[1])
    print("success")
    sys.exit(0)
if argv[:1] == ["run"] and len(argv) == 3:
    if not created.exists() or created.read_text() != argv[1]:
        print(f"Error: model '{argv[1]}' not found", file=sys.stderr)
        sys.exit(1)
    print(os.environ.get("FAKE_OLLAMA_ANSWER", "Hello."))
    sys.exit(0)
print(f"Error: unknown command {argv}", file=sys.stderr)
sys.exit(1)
