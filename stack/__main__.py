"""`python -m stack up|down|status|jars|rotate-ssn-key|clean`, the same as `loans-stack`."""

from stack.cli import main

raise SystemExit(main())
