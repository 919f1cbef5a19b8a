"""`python -m compat ...`"""

from compat.cli.main import main

raise SystemExit(main())
