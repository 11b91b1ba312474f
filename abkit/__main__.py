import sys

from abkit.cli import main

sys.exit(main())
