import sys

from margin_design.cli import main

sys.exit(main())
