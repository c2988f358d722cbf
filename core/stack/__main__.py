"""`python -m core.stack up|down|status|jars|rotate-ssn-key|clean`, the same as `loans-stack`."""

from core.stack.cli import main

raise SystemExit(main())
