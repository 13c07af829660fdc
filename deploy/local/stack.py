#!/usr/bin/env python3
"""Entry point of the local runner; stdlib only, so it works before the venv exists."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ttlocal.cli import main

sys.exit(main())
