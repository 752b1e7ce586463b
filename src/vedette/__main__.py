"""`python -m vedette` runs the command line."""

from vedette.cli.main import main

raise SystemExit(main())
