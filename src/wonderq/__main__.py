import sys

from wonderq.cli import main

sys.exit(main())
